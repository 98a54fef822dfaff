// A generic Node worker. Registers the functions named in FUNCTIONS; what each
// does is chosen by the last "::" segment of its id:
//   echo  -> returns {input, metadata}
//   fail  -> throws Error(FAIL_MESSAGE) carrying .code = FAIL_CODE; the Node SDK
//            still answers code "invocation_failed" (it never forwards a custom code)
//   void  -> prints {"event":"void",...} and returns {recorded: true}
//   sleep -> waits SLEEP_MS, then returns {slept: SLEEP_MS}
//
// env: III_URL, FUNCTIONS (default "interop::echo,interop::fail,interop::void"),
//      FAIL_CODE (E_INTEROP), FAIL_MESSAGE (boom), SLEEP_MS (60000), TIMEOUT_MS (60000)
// out: {"event":"ready","worker_id","functions"}
//      {"event":"invoked","function_id","kind","input","metadata"}   (echo, fail, sleep)
//      {"event":"void","function_id","input","metadata"}
//      {"event":"stopping","reason"} {"event":"shutdown"}
// Runs until stdin EOF, SIGTERM or SIGINT.
import { connect, deadline, emit, env, envInt, envList, ready, run, shutdownAndExit, sleep, untilStopped } from './lib.mjs'

const failCode = env('FAIL_CODE', 'E_INTEROP')
const failMessage = env('FAIL_MESSAGE', 'boom')
const sleepMs = envInt('SLEEP_MS', 60000)

const kinds = {
  echo: async (input, metadata) => ({ input, metadata: metadata ?? null }),
  fail: async () => {
    throw Object.assign(new Error(failMessage), { code: failCode })
  },
  void: async () => ({ recorded: true }),
  sleep: async () => {
    await sleep(sleepMs)
    return { slept: sleepMs }
  },
}

run(async () => {
  deadline(60000)
  const ids = envList('FUNCTIONS', ['interop::echo', 'interop::fail', 'interop::void'])
  const iii = connect()
  for (const id of ids) {
    const kind = id.split('::').pop()
    const body = kinds[kind]
    if (!body) throw new Error(`function ${id}: unknown kind ${kind} (want echo|fail|void|sleep)`)
    iii.registerFunction(id, async (input, metadata) => {
      emit({ event: kind === 'void' ? 'void' : 'invoked', function_id: id, kind, input, metadata: metadata ?? null })
      return body(input, metadata)
    })
  }
  emit({ event: 'ready', worker_id: await ready(iii), functions: ids })
  emit({ event: 'stopping', reason: await untilStopped() })
  await shutdownAndExit(iii)
})
