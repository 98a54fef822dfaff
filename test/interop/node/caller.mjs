// Calls functions of another worker through the engine and prints one line per call.
// It only reports outcomes; the Go test decides what is right.
//
// env: III_URL,
//      ECHO_FN (interop::echo), VOID_FN (interop::void), FAIL_FN (interop::fail),
//      MISSING_FN (interop::missing); set one to "-" to skip that call,
//      PAYLOAD (JSON, {"hello":"world","n":42}), METADATA (JSON, {"origin":"node-caller"}),
//      ENQUEUE_QUEUE (unset = no enqueue call), ENQUEUE_FN (defaults to ECHO_FN),
//      WAIT_MS (10000: how long to retry ECHO_FN while it is function_not_found),
//      CALL_TIMEOUT_MS (5000), TIMEOUT_MS (20000)
// out: {"event":"ready","worker_id"}
//      {"event":"result","call":"echo"|"void"|"fail"|"missing"|"enqueue","function_id",
//       "ok":true,"result":...} or {..., "ok":false,"error":{name,code,message,error_message,function_id,stacktrace}}
//      {"event":"done"} {"event":"shutdown"}
import { TriggerAction } from 'iii-sdk'
import { connect, deadline, emit, env, envInt, envJSON, errorJSON, ready, run, shutdownAndExit, sleep } from './lib.mjs'

const fn = (name, fallback) => {
  const v = env(name, fallback)
  return v === '-' ? null : v
}

async function call(iii, label, request) {
  try {
    const result = await iii.trigger(request)
    emit({ event: 'result', call: label, function_id: request.function_id, ok: true, result: result ?? null })
  } catch (e) {
    emit({ event: 'result', call: label, function_id: request.function_id, ok: false, error: errorJSON(e) })
  }
}

// Retries while the engine says function_not_found (the target worker may not be up yet).
async function waitFor(iii, functionId, payload, metadata) {
  const until = Date.now() + envInt('WAIT_MS', 10000)
  for (;;) {
    try {
      return { ok: true, result: (await iii.trigger({ function_id: functionId, payload, metadata })) ?? null }
    } catch (e) {
      if (e?.code !== 'function_not_found' || Date.now() > until) return { ok: false, error: errorJSON(e) }
      await sleep(100)
    }
  }
}

run(async () => {
  deadline(20000)
  const payload = envJSON('PAYLOAD', { hello: 'world', n: 42 })
  const metadata = envJSON('METADATA', { origin: 'node-caller' })
  const echo = fn('ECHO_FN', 'interop::echo')
  const iii = connect()
  emit({ event: 'ready', worker_id: await ready(iii) })

  if (echo) {
    emit({ event: 'result', call: 'echo', function_id: echo, ...(await waitFor(iii, echo, payload, metadata)) })
  }
  const voidFn = fn('VOID_FN', 'interop::void')
  if (voidFn) {
    // Resolves at once with undefined: no invocation_id is sent and no reply comes back.
    await call(iii, 'void', { function_id: voidFn, payload: { ...payload, void: true }, metadata, action: TriggerAction.Void() })
  }
  const failFn = fn('FAIL_FN', 'interop::fail')
  if (failFn) await call(iii, 'fail', { function_id: failFn, payload })
  const missing = fn('MISSING_FN', 'interop::missing')
  if (missing) await call(iii, 'missing', { function_id: missing, payload })
  const queue = env('ENQUEUE_QUEUE', undefined)
  if (queue) {
    const target = env('ENQUEUE_FN', echo ?? 'interop::echo')
    await call(iii, 'enqueue', { function_id: target, payload, action: TriggerAction.Enqueue({ queue }) })
  }
  emit({ event: 'done' })
  await shutdownAndExit(iii)
})
