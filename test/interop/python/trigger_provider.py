"""Provides a trigger type. The engine forwards bindings of that type to it as
registertrigger/unregistertrigger frames; the SDK calls the handler below and
answers each registertrigger with a triggerregistrationresult (with an error
only if the handler raises).

env: III_URL, TRIGGER_TYPE (interop::ticker), DESCRIPTION,
     FIRE_COUNT (0: on each registertrigger, call the bound function this many
       times with payload {tick, trigger_id, config} and the binding's metadata),
     UNREGISTER_TYPE_AFTER_MS (unset: never; else iii.unregister_trigger_type(),
       which sends unregistertriggertype), TIMEOUT_MS (60000)
     A binding whose config has "reject": true is refused (the handler raises).
out: {"event":"ready","worker_id","trigger_type"}
     {"event":"registertrigger","id","function_id","config","metadata"}
     {"event":"unregistertrigger","id","function_id","config","metadata"}
     {"event":"fired","id","function_id","tick","ok","result"|"error"}
     {"event":"unregistertriggertype","trigger_type"}
     {"event":"stopping","reason"} {"event":"shutdown"}
Runs until stdin EOF, SIGTERM or SIGINT.
"""

import asyncio
import threading
from typing import Any

from iii.triggers import TriggerConfig, TriggerHandler

from interop_lib import (connect, deadline, emit, env, env_int, error_json, ready, run, shutdown_and_exit,
                         until_stopped)

TYPE = env("TRIGGER_TYPE", "interop::ticker")
FIRE_COUNT = env_int("FIRE_COUNT", 0)


def fields(b: TriggerConfig) -> dict[str, Any]:
    return {"id": b.id, "function_id": b.function_id, "config": b.config, "metadata": b.metadata}


class Provider(TriggerHandler[Any]):
    def __init__(self) -> None:
        self.iii: Any = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def register_trigger(self, config: TriggerConfig) -> None:
        emit({"event": "registertrigger", **fields(config)})
        if isinstance(config.config, dict) and config.config.get("reject") is True:
            raise ValueError(f"binding {config.id} rejected by interop provider")
        if FIRE_COUNT > 0:
            # Runs after this handler has returned and the SDK has sent the
            # registration result.
            task = asyncio.get_running_loop().create_task(self.fire(config))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def unregister_trigger(self, config: TriggerConfig) -> None:
        emit({"event": "unregistertrigger", **fields(config)})

    async def fire(self, b: TriggerConfig) -> None:
        await asyncio.sleep(0)
        for tick in range(1, FIRE_COUNT + 1):
            base = {"event": "fired", "id": b.id, "function_id": b.function_id, "tick": tick}
            try:
                result = await self.iii.trigger_async({
                    "function_id": b.function_id,
                    "payload": {"tick": tick, "trigger_id": b.id, "config": b.config},
                    "metadata": b.metadata,
                })
                emit({**base, "ok": True, "result": result})
            except Exception as e:
                emit({**base, "ok": False, "error": error_json(e)})


def main() -> None:
    deadline(60000)
    provider = Provider()
    iii = connect()
    provider.iii = iii
    description = env("DESCRIPTION", "interop test trigger type provided by a Python worker")
    iii.register_trigger_type({"id": TYPE, "description": description}, provider)
    emit({"event": "ready", "worker_id": ready(iii), "trigger_type": TYPE})

    after = env_int("UNREGISTER_TYPE_AFTER_MS", -1)
    if after >= 0:
        def unregister() -> None:
            iii.unregister_trigger_type({"id": TYPE, "description": description})
            emit({"event": "unregistertriggertype", "trigger_type": TYPE})

        t = threading.Timer(after / 1000.0, unregister)
        t.daemon = True
        t.start()
    emit({"event": "stopping", "reason": until_stopped()})
    shutdown_and_exit(iii)


run(main)
