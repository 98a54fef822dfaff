"""Calls the engine's introspection builtins and prints what they return. The
Python SDK 0.22.1 has no list_functions/list_workers method: this is a plain
iii.trigger() of the builtin ids (iii.iii_constants.EngineFunctions).

env: III_URL, REGISTER (comma list of function ids to register first, each
       returning {"ok": true} with description "interop <id>"; default
       "interop::listed"; "-" for none),
     LIST (comma list of builtins, default "engine::functions::list,engine::workers::list"),
     LIST_PAYLOAD (JSON sent to each builtin, default {}), TIMEOUT_MS (20000)
out: {"event":"ready","worker_id","registered"}
     {"event":"result","function_id","ok":true,"result":...} or {..., "ok":false,"error":{...}}
     {"event":"shutdown"}
"""

from typing import Any

from iii.iii_constants import EngineFunctions

from interop_lib import connect, deadline, emit, env_json, env_list, error_json, ready, run, shutdown_and_exit


def main() -> None:
    deadline(20000)
    register = env_list("REGISTER", ["interop::listed"])
    builtins = env_list("LIST", [EngineFunctions.LIST_FUNCTIONS, EngineFunctions.LIST_WORKERS])
    payload = env_json("LIST_PAYLOAD", {})
    iii = connect()
    for fid in register:
        async def ok(data: Any) -> Any:
            return {"ok": True}

        iii.register_function(fid, ok, description=f"interop {fid}")
    emit({"event": "ready", "worker_id": ready(iii), "registered": register})
    for function_id in builtins:
        try:
            result = iii.trigger({"function_id": function_id, "payload": payload})
            emit({"event": "result", "function_id": function_id, "ok": True, "result": result})
        except Exception as e:
            emit({"event": "result", "function_id": function_id, "ok": False, "error": error_json(e)})
    shutdown_and_exit(iii)


run(main)
