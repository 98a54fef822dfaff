"""Calls functions of another worker through the engine and prints one line
per call. It only reports outcomes; the Go test decides what is right.

env: III_URL,
     ECHO_FN (interop::echo), VOID_FN (interop::void), FAIL_FN (interop::fail),
     MISSING_FN (interop::missing), CODED_FN (unset: no "coded" call); set one to
     "-" to skip that call,
     PAYLOAD (JSON, {"hello":"world","n":42}), METADATA (JSON, {"origin":"python-caller"}),
     ENQUEUE_QUEUE (unset = no enqueue call), ENQUEUE_FN (defaults to ECHO_FN),
     WAIT_MS (10000: how long to retry ECHO_FN while it is function_not_found),
     CALL_TIMEOUT_MS (5000), TIMEOUT_MS (20000)
Calls, in this order: echo (sync, with metadata), void (TriggerAction.Void(),
payload plus "void": true, with metadata), fail, coded, missing, enqueue
(TriggerAction.Enqueue(queue=ENQUEUE_QUEUE)).
out: {"event":"ready","worker_id"}
     {"event":"result","call","function_id","ok":true,"result":...}
       or {..., "ok":false,"error":{name,code,message,error_message,function_id,stacktrace}}
     {"event":"done"} {"event":"shutdown"}
"""

import time
from typing import Any

from iii import InvocationError, TriggerAction

from interop_lib import connect, deadline, emit, env, env_int, env_json, error_json, ready, run, shutdown_and_exit


def fn(name: str, default: str | None) -> str | None:
    v = env(name, default)
    return None if v == "-" else v


def call(iii: Any, label: str, request: dict[str, Any]) -> None:
    try:
        result = iii.trigger(request)
        emit({"event": "result", "call": label, "function_id": request["function_id"], "ok": True, "result": result})
    except Exception as e:
        emit({"event": "result", "call": label, "function_id": request["function_id"], "ok": False, "error": error_json(e)})


def wait_for(iii: Any, function_id: str, payload: Any, metadata: Any) -> dict[str, Any]:
    """Retries while the engine says function_not_found (the target may not be up yet)."""
    until = time.monotonic() + env_int("WAIT_MS", 10000) / 1000.0
    while True:
        try:
            result = iii.trigger({"function_id": function_id, "payload": payload, "metadata": metadata})
            return {"ok": True, "result": result}
        except InvocationError as e:
            if e.code != "function_not_found" or time.monotonic() > until:
                return {"ok": False, "error": error_json(e)}
            time.sleep(0.1)


def main() -> None:
    deadline(20000)
    payload = env_json("PAYLOAD", {"hello": "world", "n": 42})
    metadata = env_json("METADATA", {"origin": "python-caller"})
    echo = fn("ECHO_FN", "interop::echo")
    iii = connect()
    emit({"event": "ready", "worker_id": ready(iii)})

    if echo:
        emit({"event": "result", "call": "echo", "function_id": echo, **wait_for(iii, echo, payload, metadata)})
    void_fn = fn("VOID_FN", "interop::void")
    if void_fn:
        # Returns None at once: no invocation_id is sent and no reply comes back.
        void_payload = {**payload, "void": True} if isinstance(payload, dict) else payload
        call(iii, "void", {"function_id": void_fn, "payload": void_payload, "metadata": metadata,
                           "action": TriggerAction.Void()})
    fail_fn = fn("FAIL_FN", "interop::fail")
    if fail_fn:
        call(iii, "fail", {"function_id": fail_fn, "payload": payload})
    coded_fn = fn("CODED_FN", None)
    if coded_fn:
        call(iii, "coded", {"function_id": coded_fn, "payload": payload})
    missing = fn("MISSING_FN", "interop::missing")
    if missing:
        call(iii, "missing", {"function_id": missing, "payload": payload})
    queue = env("ENQUEUE_QUEUE")
    if queue:
        target = env("ENQUEUE_FN", echo or "interop::echo")
        call(iii, "enqueue", {"function_id": target, "payload": payload, "action": TriggerAction.Enqueue(queue=queue)})
    emit({"event": "done"})
    shutdown_and_exit(iii)


run(main)
