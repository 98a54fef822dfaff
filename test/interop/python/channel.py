"""Data channels through the SDK's ChannelWriter/ChannelReader.

Data written (the same layout as ../node/channel.mjs): BYTES bytes, byte
i = (i*31 + 7) & 0xff, cut into MESSAGES+1 nearly equal parts (part k = bytes
[k*BYTES//(MESSAGES+1), (k+1)*BYTES//(MESSAGES+1))); after part k (k < MESSAGES)
one text frame {"seq":k,"text":"message k ✓"}. ChannelWriter.write() sends
binary frames of at most 64 KiB and is awaited before each text frame, so the
order on the wire is exact. Each summary has: bytes, sha256 (hex of all binary
bytes), messages (text frames in order) and offsets (for each message, the
binary byte count before it).

MODE=create-and-write  iii.helpers.create_channel, print both refs, write, close.
  env: BUFFER_SIZE (unset: engine default)
  out: {"event":"channel","reader":ref,"writer":ref} then {"event":"written",...summary}
MODE=read   env READER_REF (JSON ref, direction "read"): read to EOF.   out: {"event":"read",...summary}
MODE=write  env WRITER_REF (JSON ref, direction "write"): write, close. out: {"event":"written",...summary}
MODE=self   create, then write and read concurrently in this process.
  out: {"event":"channel",...}, {"event":"written",...}, {"event":"read",...}, {"event":"self","match":bool}
MODE=serve  a worker with two functions (the SDK turns refs in the input into
  ChannelReader/ChannelWriter objects):
  CHANNEL_READ_FN  (interop::channel-read):  input {"reader": ref} -> returns the read summary
  CHANNEL_WRITE_FN (interop::channel-write): input {"writer": ref, "bytes"?, "messages"?} -> the written summary
  out: {"event":"ready","worker_id"}, {"event":"served","function_id","summary"}; runs until stdin EOF/SIGTERM.
Common env: III_URL, BYTES (200000), MESSAGES (3), TIMEOUT_MS (30000; serve 60000).
The standalone modes (read, write) run the channel on an event loop of their
own; the others on the SDK's.
"""

import asyncio
import hashlib
import json
from typing import Any

from iii.channels import ChannelReader, ChannelWriter
from iii.helpers import create_channel
from iii.iii_types import StreamChannelRef

from interop_lib import (connect, deadline, die, emit, engine_url, env, env_int, env_json, ready, run,
                         shutdown_and_exit, until_stopped)

TOTAL = env_int("BYTES", 200000)
COUNT = env_int("MESSAGES", 3)

_PERIOD = bytes((i * 31 + 7) & 0xFF for i in range(256))  # the pattern repeats every 256 bytes


def pattern(n: int) -> bytes:
    return (_PERIOD * (n // 256 + 1))[:n]


def message(k: int) -> str:
    return json.dumps({"seq": k, "text": f"message {k} ✓"}, ensure_ascii=False, separators=(",", ":"))


async def write_all(writer: ChannelWriter, total: int, count: int) -> dict[str, Any]:
    data = pattern(total)
    messages: list[str] = []
    offsets: list[int] = []
    if total == 0 and count == 0:
        # With nothing to write the SDK would never open the socket (SDK-internal method).
        await writer._ensure_connected()
    for k in range(count + 1):
        part = data[k * total // (count + 1):(k + 1) * total // (count + 1)]
        if part:
            await writer.write(part)
        if k < count:
            offsets.append((k + 1) * total // (count + 1))
            messages.append(message(k))
            await writer.send_message_async(message(k))
    # close_async: waits 10 ms, then a normal close handshake (code 1000, no reason).
    await writer.close_async()
    return {"bytes": total, "sha256": hashlib.sha256(data).hexdigest(), "messages": messages, "offsets": offsets}


async def read_all(reader: ChannelReader) -> dict[str, Any]:
    messages: list[str] = []
    offsets: list[int] = []
    received = 0
    h = hashlib.sha256()

    def on_message(m: str) -> None:
        # The reader's iterator calls this between the binary chunks it
        # yields, so the count is exact.
        messages.append(m)
        offsets.append(received)

    reader.on_message(on_message)
    async for chunk in reader:
        received += len(chunk)
        h.update(chunk)
    return {"bytes": received, "sha256": h.hexdigest(), "messages": messages, "offsets": offsets}


def ref(name: str, direction: str) -> StreamChannelRef:
    r = StreamChannelRef(**env_json(name))
    if r.direction != direction:
        die(f"{name} has direction {r.direction}, want {direction}")
    return r


def on_sdk_loop(iii: Any, coro: Any) -> Any:
    """Runs a coroutine on the SDK's event loop (an internal attribute) and waits for it."""
    return asyncio.run_coroutine_threadsafe(coro, iii._loop).result()


def create_and_write() -> None:
    iii = connect()
    ch = create_channel(iii, env_int("BUFFER_SIZE", None))
    emit({"event": "channel", "reader": ch.reader_ref.model_dump(), "writer": ch.writer_ref.model_dump()})
    emit({"event": "written", **on_sdk_loop(iii, write_all(ch.writer, TOTAL, COUNT))})
    shutdown_and_exit(iii)


def read() -> None:
    emit({"event": "read", **asyncio.run(read_all(ChannelReader(engine_url(), ref("READER_REF", "read"))))})
    shutdown_and_exit(None)


def write() -> None:
    emit({"event": "written", **asyncio.run(write_all(ChannelWriter(engine_url(), ref("WRITER_REF", "write")),
                                                      TOTAL, COUNT))})
    shutdown_and_exit(None)


def self_() -> None:
    iii = connect()
    ch = create_channel(iii, env_int("BUFFER_SIZE", None))
    emit({"event": "channel", "reader": ch.reader_ref.model_dump(), "writer": ch.writer_ref.model_dump()})

    async def both() -> Any:
        return await asyncio.gather(write_all(ch.writer, TOTAL, COUNT), read_all(ch.reader))

    written, got = on_sdk_loop(iii, both())
    emit({"event": "written", **written})
    emit({"event": "read", **got})
    emit({"event": "self", "match": written == got})
    if written != got:
        die("read side differs from written side")
    shutdown_and_exit(iii)


def serve() -> None:
    iii = connect()
    read_fn = env("CHANNEL_READ_FN", "interop::channel-read")
    write_fn = env("CHANNEL_WRITE_FN", "interop::channel-write")

    async def channel_read(data: Any) -> Any:
        reader = data.get("reader") if isinstance(data, dict) else None
        if not isinstance(reader, ChannelReader):
            raise TypeError("input.reader is not a read channel ref")
        summary = await read_all(reader)
        emit({"event": "served", "function_id": read_fn, "summary": summary})
        return summary

    async def channel_write(data: Any) -> Any:
        writer = data.get("writer") if isinstance(data, dict) else None
        if not isinstance(writer, ChannelWriter):
            raise TypeError("input.writer is not a write channel ref")
        summary = await write_all(writer, data.get("bytes", TOTAL), data.get("messages", COUNT))
        emit({"event": "served", "function_id": write_fn, "summary": summary})
        return summary

    iii.register_function(read_fn, channel_read)
    iii.register_function(write_fn, channel_write)
    emit({"event": "ready", "worker_id": ready(iii)})
    emit({"event": "stopping", "reason": until_stopped()})
    shutdown_and_exit(iii)


MODES = {"create-and-write": create_and_write, "read": read, "write": write, "self": self_, "serve": serve}


def main() -> None:
    mode = env("MODE", "self")
    if mode not in MODES:
        die(f"unknown MODE {mode} (want {'|'.join(MODES)})")
    deadline(60000 if mode == "serve" else 30000)
    MODES[mode]()


run(main)
