"""A generic Python worker. Registers the functions named in FUNCTIONS; what
each does is chosen by the last "::" segment of its id:
  echo      async handler(data, metadata) -> {"input": data, "metadata": metadata}
  syncecho  the same as a plain (non-async) function, which the SDK runs on a thread
  fail      raises RuntimeError(FAIL_MESSAGE); on the wire: invocation_failed,
            message FAIL_MESSAGE, the Python traceback as stacktrace
  coded     raises iii.InvocationError(FAIL_CODE, FAIL_MESSAGE); the SDK still
            answers invocation_failed, with message str(err) = "FAIL_CODE: FAIL_MESSAGE"
  void      prints {"event":"void",...} and returns {"recorded": true}
  none      returns None (the SDK then sends a result without "result")
  sleep     waits SLEEP_MS, then returns {"slept": SLEEP_MS}
  relay     calls RELAY_FN from inside the handler (trigger_async, same payload and
            metadata) and returns {"relayed": <its result>}; its error propagates

env: III_URL, FUNCTIONS (default "interop::echo,interop::fail,interop::void"),
     FAIL_CODE (E_INTEROP), FAIL_MESSAGE (boom), SLEEP_MS (60000), RELAY_FN (interop::echo),
     TIMEOUT_MS (60000)
out: {"event":"ready","worker_id","functions"}
     {"event":"invoked","function_id","kind","input","metadata"}   (every kind but void)
     {"event":"void","function_id","kind","input","metadata"}
     {"event":"stopping","reason"} {"event":"shutdown"}
Runs until stdin EOF, SIGTERM or SIGINT.
"""

import asyncio
from typing import Any

from iii import InvocationError

from interop_lib import connect, deadline, emit, env, env_int, env_list, ready, run, shutdown_and_exit, until_stopped

FAIL_CODE = env("FAIL_CODE", "E_INTEROP")
FAIL_MESSAGE = env("FAIL_MESSAGE", "boom")
SLEEP_MS = env_int("SLEEP_MS", 60000)
RELAY_FN = env("RELAY_FN", "interop::echo")


def make_handler(iii: Any, function_id: str, kind: str) -> Any:
    def record(data: Any, metadata: Any) -> None:
        event = "void" if kind == "void" else "invoked"
        emit({"event": event, "function_id": function_id, "kind": kind, "input": data, "metadata": metadata})

    if kind == "syncecho":

        def sync_handler(data: Any, metadata: Any = None) -> Any:
            record(data, metadata)
            return {"input": data, "metadata": metadata}

        return sync_handler

    async def handler(data: Any, metadata: Any = None) -> Any:
        record(data, metadata)
        if kind == "echo":
            return {"input": data, "metadata": metadata}
        if kind == "fail":
            raise RuntimeError(FAIL_MESSAGE)
        if kind == "coded":
            raise InvocationError(code=FAIL_CODE, message=FAIL_MESSAGE)
        if kind == "void":
            return {"recorded": True}
        if kind == "none":
            return None
        if kind == "relay":
            return {"relayed": await iii.trigger_async({"function_id": RELAY_FN, "payload": data, "metadata": metadata})}
        if kind == "sleep":
            await asyncio.sleep(SLEEP_MS / 1000.0)
            return {"slept": SLEEP_MS}
        raise AssertionError(kind)

    return handler


KINDS = {"echo", "syncecho", "fail", "coded", "void", "none", "sleep", "relay"}


def main() -> None:
    deadline(60000)
    ids = env_list("FUNCTIONS", ["interop::echo", "interop::fail", "interop::void"])
    iii = connect()
    for fid in ids:
        kind = fid.split("::")[-1]
        if kind not in KINDS:
            raise ValueError(f"function {fid}: unknown kind {kind} (want {'|'.join(sorted(KINDS))})")
        iii.register_function(fid, make_handler(iii, fid, kind))
    emit({"event": "ready", "worker_id": ready(iii), "functions": ids})
    emit({"event": "stopping", "reason": until_stopped()})
    shutdown_and_exit(iii)


run(main)
