"""Emits log records through the SDK's OTel Logger. They leave on the separate
<III_URL>/otel WebSocket as binary frames "LOGS" + OTLP/JSON (one frame per
record with the default batch size 1), not as engine::log::* calls.
OTel is forced on here (InitOptions.otel enabled), whatever OTEL_ENABLED says.

Logger is not exported by the iii package (its docstring says `from iii import
Logger`, which fails); it lives in iii_helpers.observability. The OTel socket's
address is not the worker's: init_otel uses OtelConfig.engine_ws_url, else env
III_URL, else ws://localhost:49134 (the tests set III_URL).

flush_otel() only hands the records to the OTel socket's send queue, and
shutdown drops that queue, so the script keeps running after "flushed" until
it is stopped; the Go test stops it once the double has the records.

env: III_URL, LOG_MARK (interop-log: prefix of every message), TIMEOUT_MS (30000)
out: {"event":"ready","worker_id"}
     {"event":"logged","records":[{"level","message","data"}]}
     {"event":"flushed"} {"event":"stopping","reason"} {"event":"shutdown"}
"""

import asyncio

from iii_helpers.observability import Logger, flush_otel

from interop_lib import connect, deadline, emit, env, ready, run, shutdown_and_exit, until_stopped


def main() -> None:
    deadline(30000)
    mark = env("LOG_MARK", "interop-log")
    iii = connect(otel={"enabled": True})
    emit({"event": "ready", "worker_id": ready(iii)})

    logger = Logger(None, "interop-logger")
    records = [{"level": level, "message": f"{mark} {level} #{seq}", "data": {"seq": seq, "level": level, "mark": mark}}
               for seq, level in enumerate(["info", "warn", "error", "debug"])]
    for r in records:
        getattr(logger, r["level"])(r["message"], r["data"])
    emit({"event": "logged", "records": records})
    asyncio.run(flush_otel())
    emit({"event": "flushed"})
    emit({"event": "stopping", "reason": until_stopped()})
    shutdown_and_exit(iii)


run(main)
