// Calls the engine's introspection builtins and prints what they return. The
// Node SDK 0.22.1 has no listFunctions/listWorkers method: this is a plain
// iii.trigger() of the builtin ids (exported as EngineFunctions from 'iii-sdk/engine').
//
// env: III_URL, REGISTER (comma list of function ids to register first, each
//        returning {ok: true}; default "interop::listed"; "-" for none),
//      LIST (comma list of builtins, default "engine::functions::list,engine::workers::list"),
//      LIST_PAYLOAD (JSON sent to each builtin, default {}), TIMEOUT_MS (20000)
// out: {"event":"ready","worker_id","registered"}
//      {"event":"result","function_id","ok":true,"result":...} or {..., "ok":false,"error":{...}}
//      {"event":"shutdown"}
import { EngineFunctions } from 'iii-sdk/engine'
import { connect, deadline, emit, env, envJSON, envList, errorJSON, ready, run, shutdownAndExit } from './lib.mjs'

run(async () => {
  deadline(20000)
  const register = env('REGISTER', 'interop::listed') === '-' ? [] : envList('REGISTER', ['interop::listed'])
  const builtins = envList('LIST', [EngineFunctions.LIST_FUNCTIONS, EngineFunctions.LIST_WORKERS])
  const payload = envJSON('LIST_PAYLOAD', {})
  const iii = connect()
  for (const id of register) iii.registerFunction(id, async () => ({ ok: true }), { description: `interop ${id}` })
  emit({ event: 'ready', worker_id: await ready(iii), registered: register })
  for (const function_id of builtins) {
    try {
      emit({ event: 'result', function_id, ok: true, result: (await iii.trigger({ function_id, payload })) ?? null })
    } catch (e) {
      emit({ event: 'result', function_id, ok: false, error: errorJSON(e) })
    }
  }
  await shutdownAndExit(iii)
})
