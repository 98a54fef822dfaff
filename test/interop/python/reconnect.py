"""A worker with one of each registration kind, for the reconnect test: the Go
side drops the connection and checks that the SDK reconnects, sends reattach
first and replays registertriggertype, registerfunction, registertrigger (same
trigger id), then engine::workers::register.

env: III_URL, TRIGGER_TYPE (interop::reconnect-type), FUNCTION_ID (interop::reconnect-fn),
     TIMEOUT_MS (60000)
out: {"event":"worker_id","worker_id","n"}   every new id from workerregistered (n = 1, 2, ...),
                                            polled every 10 ms
     {"event":"state","state"}              each connection state change (the SDK's
                                            add_connection_state_listener)
     {"event":"ready","worker_id","trigger_id"}
     {"event":"registertrigger"|"unregistertrigger","id","function_id","config"}  (provider side)
     {"event":"invoked","function_id","input","metadata"}
     {"event":"stopping","reason"} {"event":"shutdown"}
Runs until stdin EOF, SIGTERM or SIGINT.
"""

import os
import threading
import time
from typing import Any

from iii.triggers import TriggerConfig, TriggerHandler

from interop_lib import connect, deadline, emit, env, ready, run, shutdown_and_exit, stopped, until_stopped


class Provider(TriggerHandler[Any]):
    async def register_trigger(self, config: TriggerConfig) -> None:
        emit({"event": "registertrigger", "id": config.id, "function_id": config.function_id, "config": config.config})

    async def unregister_trigger(self, config: TriggerConfig) -> None:
        emit({"event": "unregistertrigger", "id": config.id, "function_id": config.function_id,
              "config": config.config})


def main() -> None:
    deadline(60000)
    trigger_type = env("TRIGGER_TYPE", "interop::reconnect-type")
    function_id = env("FUNCTION_ID", "interop::reconnect-fn")
    iii = connect()
    iii.add_connection_state_listener(lambda state: emit({"event": "state", "state": state}))

    def watch_ids() -> None:
        last, n = None, 0
        while not stopped():
            wid = iii.worker_id
            if wid and wid != last:
                last, n = wid, n + 1
                emit({"event": "worker_id", "worker_id": wid, "n": n})
            time.sleep(0.01)

    threading.Thread(target=watch_ids, daemon=True).start()

    iii.register_trigger_type({"id": trigger_type, "description": "interop reconnect trigger type"}, Provider())

    async def handler(data: Any, metadata: Any = None) -> Any:
        emit({"event": "invoked", "function_id": function_id, "input": data, "metadata": metadata})
        return {"pid": os.getpid(), "worker_id": iii.worker_id}

    iii.register_function(function_id, handler)
    iii.register_trigger({"type": trigger_type, "function_id": function_id, "config": {"reconnect": True}})
    trigger_id = list(iii._triggers)[-1]  # internal dict; the SDK does not expose the id
    emit({"event": "ready", "worker_id": ready(iii), "trigger_id": trigger_id})
    emit({"event": "stopping", "reason": until_stopped()})
    shutdown_and_exit(iii)


run(main)
