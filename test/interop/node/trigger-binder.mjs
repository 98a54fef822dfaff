// Registers a function and binds a trigger of TRIGGER_TYPE to it, optionally
// unbinding it later. The SDK never tells the binder about a successful binding;
// a failure arrives as a triggerregistrationresult that the SDK only prints with
// console.error, so that line is turned into an event here.
//
// env: III_URL, TRIGGER_TYPE (interop::ticker), FUNCTION_ID (interop::ticked),
//      CONFIG (JSON, {"interval_ms":100}), METADATA (JSON, {"binder":"node"}),
//      UNREGISTER_AFTER_MS (unset: never; counted from "bound"),
//      EXIT_AFTER_UNREGISTER_MS (unset: keep running; else exit 0 this long after "unbound"),
//      TIMEOUT_MS (60000)
// out: {"event":"ready","worker_id"}
//      {"event":"bound","id","trigger_type","function_id","config","metadata"}
//      {"event":"invoked","function_id","input","metadata"}     (each fire of the binding)
//      {"event":"trigger_registration_failed","id","trigger_type","message"}
//      {"event":"unbound","id"}
//      {"event":"stopping","reason"} {"event":"shutdown"}
// Runs until stdin EOF, SIGTERM, SIGINT or EXIT_AFTER_UNREGISTER_MS.
import { connect, deadline, emit, env, envInt, envJSON, ready, run, shutdownAndExit, sleep, untilStopped } from './lib.mjs'

// index.mjs onTriggerRegistrationResult: `[iii] Trigger registration failed for "<id>" (<type>): <message>`
const failed = /^\[iii\] Trigger registration failed for "([^"]*)" \(([^)]*)\): (.*)$/s
const consoleError = console.error
console.error = (...args) => {
  const m = typeof args[0] === 'string' && args[0].match(failed)
  if (m) emit({ event: 'trigger_registration_failed', id: m[1], trigger_type: m[2], message: m[3] })
  consoleError(...args)
}

run(async () => {
  deadline(60000)
  const type = env('TRIGGER_TYPE', 'interop::ticker')
  const functionId = env('FUNCTION_ID', 'interop::ticked')
  const config = envJSON('CONFIG', { interval_ms: 100 })
  const metadata = envJSON('METADATA', { binder: 'node' })
  const iii = connect()

  iii.registerFunction(functionId, async (input, meta) => {
    emit({ event: 'invoked', function_id: functionId, input, metadata: meta ?? null })
    return { ok: true, tick: input?.tick ?? null }
  })
  // config must not be undefined: JSON.stringify would drop it and the engine
  // requires the field, so it would discard the whole frame.
  const trigger = iii.registerTrigger({ type, function_id: functionId, config, metadata })
  // The SDK does not expose the binding id; it is the key of its (internal) triggers map.
  const id = [...iii.triggers.keys()].pop()
  emit({ event: 'ready', worker_id: await ready(iii) })
  emit({ event: 'bound', id, trigger_type: type, function_id: functionId, config, metadata })

  const unregisterAfter = envInt('UNREGISTER_AFTER_MS', -1)
  const exitAfter = envInt('EXIT_AFTER_UNREGISTER_MS', -1)
  const stopped = untilStopped()
  let reason = null
  if (unregisterAfter >= 0) {
    reason = await Promise.race([sleep(unregisterAfter).then(() => null), stopped])
    if (!reason) {
      trigger.unregister()
      emit({ event: 'unbound', id })
      if (exitAfter >= 0) reason = await Promise.race([sleep(exitAfter).then(() => 'done'), stopped])
    }
  }
  reason ??= await stopped
  emit({ event: 'stopping', reason })
  await shutdownAndExit(iii)
})
