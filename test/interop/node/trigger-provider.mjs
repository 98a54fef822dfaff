// Provides a trigger type. The engine forwards bindings of that type to it as
// registertrigger/unregistertrigger frames; the SDK calls the handler below and
// answers each registertrigger with a triggerregistrationresult (error only if
// the handler throws).
//
// env: III_URL, TRIGGER_TYPE (interop::ticker), DESCRIPTION,
//      FIRE_COUNT (0: on each registertrigger, call the bound function this many
//        times with payload {tick, trigger_id, config} and the binding's metadata),
//      UNREGISTER_TYPE_AFTER_MS (unset: never; else send unregistertriggertype,
//        which a v0.22.1 engine ignores), TIMEOUT_MS (60000)
//      A binding whose config has "reject": true is refused (the handler throws).
// out: {"event":"ready","worker_id","trigger_type"}
//      {"event":"registertrigger","id","function_id","config","metadata"}
//      {"event":"unregistertrigger","id","function_id","config","metadata"}
//      {"event":"fired","id","function_id","tick","ok","result"|"error"}
//      {"event":"unregistertriggertype","trigger_type"}
//      {"event":"stopping","reason"} {"event":"shutdown"}
// Runs until stdin EOF, SIGTERM or SIGINT.
import { connect, deadline, emit, env, envInt, errorJSON, ready, run, shutdownAndExit, untilStopped } from './lib.mjs'

run(async () => {
  deadline(60000)
  const type = env('TRIGGER_TYPE', 'interop::ticker')
  const fireCount = envInt('FIRE_COUNT', 0)
  const iii = connect()

  async function fire({ id, function_id, config, metadata }) {
    for (let tick = 1; tick <= fireCount; tick++) {
      try {
        const result = await iii.trigger({ function_id, payload: { tick, trigger_id: id, config }, metadata })
        emit({ event: 'fired', id, function_id, tick, ok: true, result: result ?? null })
      } catch (e) {
        emit({ event: 'fired', id, function_id, tick, ok: false, error: errorJSON(e) })
      }
    }
  }

  const ref = iii.registerTriggerType(
    { id: type, description: env('DESCRIPTION', 'interop test trigger type provided by a Node worker') },
    {
      // Receives {id, function_id, config, metadata} from the engine's registertrigger.
      async registerTrigger(binding) {
        emit({ event: 'registertrigger', ...nulls(binding) })
        if (binding.config?.reject === true) throw new Error(`binding ${binding.id} rejected by interop provider`)
        if (fireCount > 0) setImmediate(() => fire(binding)) // after the SDK has sent the registration result
      },
      // The engine's unregistertrigger carries only {id, trigger_type}; the SDK fills
      // function_id with "" and leaves config/metadata undefined.
      async unregisterTrigger(binding) {
        emit({ event: 'unregistertrigger', ...nulls(binding) })
      },
    },
  )
  emit({ event: 'ready', worker_id: await ready(iii), trigger_type: type })

  const after = envInt('UNREGISTER_TYPE_AFTER_MS', -1)
  if (after >= 0) {
    setTimeout(() => {
      ref.unregister()
      emit({ event: 'unregistertriggertype', trigger_type: type })
    }, after)
  }
  emit({ event: 'stopping', reason: await untilStopped() })
  await shutdownAndExit(iii)
})

function nulls({ id, function_id, config, metadata }) {
  return { id, function_id: function_id ?? null, config: config ?? null, metadata: metadata ?? null }
}
