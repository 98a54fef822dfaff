// A Node worker serving HTTP routes through the engine's "http" trigger type.
//   interop::http::echo   POST /node/items/:id  buffered: answers 201 with
//                         {id, q, body} and header x-node: yes
//   interop::http::stream POST /node/stream     streamed with the http() helper
//                         of @iii-dev/helpers: reads the whole request body
//                         from its channel, sets 202 and headers, then writes
//                         CHUNKS lines "chunk <i> of <request bytes>\n"
//
// env: III_URL, CHUNKS (3), TIMEOUT_MS (60000)
// out: {"event":"ready","worker_id"}
//      {"event":"invoked","function_id","input"}   (input: what the handler saw)
//      {"event":"stopping","reason"} {"event":"shutdown"}
// Runs until stdin EOF, SIGTERM or SIGINT.
import { http } from '@iii-dev/helpers/http'
import { connect, deadline, emit, envInt, ready, run, shutdownAndExit, untilStopped } from './lib.mjs'

run(async () => {
  deadline(60000)
  const chunks = envInt('CHUNKS', 3)
  const iii = connect()
  iii.registerFunction('interop::http::echo', async (req) => {
    emit({
      event: 'invoked',
      function_id: 'interop::http::echo',
      input: {
        path: req.path,
        method: req.method,
        path_params: req.path_params,
        query_params: req.query_params,
        body: req.body,
        x_test: req.headers['x-test'] ?? null,
        trigger: req.trigger ?? null,
      },
    })
    return { status_code: 201, headers: { 'x-node': 'yes' }, body: { id: req.path_params.id, q: req.query_params.q ?? null, body: req.body } }
  })
  iii.registerFunction(
    'interop::http::stream',
    http(async (req, res) => {
      const input = await req.request_body.readAll()
      emit({ event: 'invoked', function_id: 'interop::http::stream', input: { bytes: input.length, body: req.body } })
      res.status(202)
      res.headers({ 'content-type': 'text/plain', 'x-streamed': '1' })
      for (let i = 0; i < chunks; i++) {
        await new Promise((resolve) => res.stream.write(`chunk ${i} of ${input.length}\n`, resolve))
      }
      res.stream.end()
    }),
  )
  iii.registerTrigger({ type: 'http', function_id: 'interop::http::echo', config: { api_path: '/node/items/:id', http_method: 'POST' } })
  iii.registerTrigger({ type: 'http', function_id: 'interop::http::stream', config: { api_path: '/node/stream', http_method: 'POST' } })
  emit({ event: 'ready', worker_id: await ready(iii) })
  emit({ event: 'stopping', reason: await untilStopped() })
  await shutdownAndExit(iii)
})
