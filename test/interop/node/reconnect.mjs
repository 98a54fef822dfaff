// A worker with one of each registration kind, for the reconnect test: the Go
// side drops the connection and checks that the SDK reconnects, sends reattach
// first and replays registertriggertype, registerfunction, registertrigger (same
// trigger id), then engine::workers::register.
//
// env: III_URL, TRIGGER_TYPE (interop::reconnect-type), FUNCTION_ID (interop::reconnect-fn),
//      TIMEOUT_MS (60000)
// out: {"event":"worker_id","worker_id","n"}          every new id from workerregistered (n = 1, 2, ...)
//      {"event":"state","state"}                     SDK connection state changes: connecting,
//                                                    connected, reconnecting ("disconnected" lasts
//                                                    less than a tick, so it is rarely seen)
//      {"event":"ready","worker_id","trigger_id"}
//      {"event":"registertrigger"|"unregistertrigger","id","function_id","config"}  (provider side)
//      {"event":"invoked","function_id","input","metadata"}
//      {"event":"stopping","reason"} {"event":"shutdown"}
// Runs until stdin EOF, SIGTERM or SIGINT.
// worker id and state are SDK-internal fields (workerId, connectionState), polled every 10 ms.
import { connect, deadline, emit, env, ready, run, shutdownAndExit, untilStopped } from './lib.mjs'

run(async () => {
  deadline(60000)
  const type = env('TRIGGER_TYPE', 'interop::reconnect-type')
  const functionId = env('FUNCTION_ID', 'interop::reconnect-fn')
  const iii = connect()

  let lastId
  let lastState
  let n = 0
  setInterval(() => {
    if (iii.connectionState !== lastState) emit({ event: 'state', state: (lastState = iii.connectionState) })
    if (iii.workerId && iii.workerId !== lastId) emit({ event: 'worker_id', worker_id: (lastId = iii.workerId), n: ++n })
  }, 10)

  iii.registerTriggerType(
    { id: type, description: 'interop reconnect trigger type' },
    {
      async registerTrigger({ id, function_id, config }) {
        emit({ event: 'registertrigger', id, function_id, config: config ?? null })
      },
      async unregisterTrigger({ id, function_id, config }) {
        emit({ event: 'unregistertrigger', id, function_id, config: config ?? null })
      },
    },
  )
  iii.registerFunction(functionId, async (input, metadata) => {
    emit({ event: 'invoked', function_id: functionId, input, metadata: metadata ?? null })
    return { pid: process.pid, worker_id: iii.workerId }
  })
  iii.registerTrigger({ type, function_id: functionId, config: { reconnect: true } })
  const triggerId = [...iii.triggers.keys()].pop() // internal map; the SDK does not expose the id
  emit({ event: 'ready', worker_id: await ready(iii), trigger_id: triggerId })
  emit({ event: 'stopping', reason: await untilStopped() })
  await shutdownAndExit(iii)
})
