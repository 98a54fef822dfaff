"""Registers a function and binds a trigger of TRIGGER_TYPE to it, optionally
unbinding it later. The SDK never tells the binder about a successful binding;
a failure arrives as a triggerregistrationresult that the SDK only logs
(logger "iii.iii", level ERROR), so that record is turned into an event here.

env: III_URL, TRIGGER_TYPE (interop::ticker), FUNCTION_ID (interop::ticked),
     CONFIG (JSON, {"interval_ms":100}), METADATA (JSON, {"binder":"python"}),
     UNREGISTER_AFTER_MS (unset: never; counted from "bound"),
     TIMEOUT_MS (60000)
out: {"event":"ready","worker_id"}
     {"event":"bound","id","trigger_type","function_id","config","metadata"}
     {"event":"invoked","function_id","input","metadata"}     (each fire of the binding)
     {"event":"trigger_registration_failed","id","trigger_type","message"}
     {"event":"unbound","id"}
     {"event":"stopping","reason"} {"event":"shutdown"}
Runs until stdin EOF, SIGTERM or SIGINT. Fires can arrive before "ready".
"""

import logging
from typing import Any

from interop_lib import connect, deadline, emit, env, env_int, env_json, ready, run, shutdown_and_exit, until_stopped

FAILED_FORMAT = "[iii] Trigger registration failed for %r (%s): %s"


class FailedRegistration(logging.Handler):
    """Turns the SDK's log record for a refused binding into an event."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == FAILED_FORMAT and isinstance(record.args, tuple) and len(record.args) == 3:
            trigger_id, trigger_type, message = record.args
            emit({"event": "trigger_registration_failed", "id": trigger_id, "trigger_type": trigger_type,
                  "message": message})


def main() -> None:
    deadline(60000)
    logging.getLogger("iii.iii").addHandler(FailedRegistration())
    trigger_type = env("TRIGGER_TYPE", "interop::ticker")
    function_id = env("FUNCTION_ID", "interop::ticked")
    config = env_json("CONFIG", {"interval_ms": 100})
    metadata = env_json("METADATA", {"binder": "python"})
    iii = connect()

    async def ticked(data: Any, metadata: Any = None) -> Any:
        emit({"event": "invoked", "function_id": function_id, "input": data, "metadata": metadata})
        return {"ok": True, "tick": data.get("tick") if isinstance(data, dict) else None}

    iii.register_function(function_id, ticked)
    trigger = iii.register_trigger({"type": trigger_type, "function_id": function_id, "config": config,
                                    "metadata": metadata})
    # The SDK does not expose the binding id; it is the key of its (internal) _triggers dict.
    binding_id = list(iii._triggers)[-1]
    emit({"event": "ready", "worker_id": ready(iii)})
    emit({"event": "bound", "id": binding_id, "trigger_type": trigger_type, "function_id": function_id,
          "config": config, "metadata": metadata})

    reason = None
    after = env_int("UNREGISTER_AFTER_MS", -1)
    if after >= 0:
        reason = until_stopped(after / 1000.0)
        if reason is None:
            trigger.unregister()
            emit({"event": "unbound", "id": binding_id})
    emit({"event": "stopping", "reason": reason or until_stopped()})
    shutdown_and_exit(iii)


run(main)
