// Starts a trace in Node and continues it in another worker: inside a span of
// its own (kind CLIENT, made active with the SDK's withSpan), it calls TRACE_FN
// through iii.trigger, which injects the span's traceparent and baggage into the
// invokefunction frame. Then it flushes OTel, so that the span reaches the
// engine's /otel endpoint. OTel is forced on here (otel.enabled), whatever
// OTEL_ENABLED says.
//
// env: III_URL, TRACE_FN (interop::traced), PAYLOAD (JSON, {"hello":"trace"}),
//      WAIT_MS (10000: how long to retry while TRACE_FN is function_not_found),
//      TIMEOUT_MS (20000)
// out: {"event":"ready","worker_id"}
//      {"event":"traced","span_name","trace_id","span_id","ok":true,"result"} or {..., "ok":false,"error"}
//      {"event":"flushed"} {"event":"shutdown"}
import { flushOtel, withSpan } from '@iii-dev/helpers/observability'
import { connect, deadline, emit, env, envInt, envJSON, errorJSON, ready, run, shutdownAndExit, sleep } from './lib.mjs'

const SPAN_KIND_CLIENT = 2 // @opentelemetry/api SpanKind.CLIENT (OTLP kind 3)

run(async () => {
  deadline(20000)
  const fn = env('TRACE_FN', 'interop::traced')
  const payload = envJSON('PAYLOAD', { hello: 'trace' })
  const spanName = 'interop trace root'
  const iii = connect({ otel: { enabled: true } })
  emit({ event: 'ready', worker_id: await ready(iii) })

  await withSpan(spanName, { kind: SPAN_KIND_CLIENT }, async (span) => {
    const { traceId, spanId } = span.spanContext()
    const until = Date.now() + envInt('WAIT_MS', 10000)
    for (;;) {
      try {
        const result = await iii.trigger({ function_id: fn, payload })
        emit({ event: 'traced', span_name: spanName, trace_id: traceId, span_id: spanId, ok: true, result: result ?? null })
        return
      } catch (e) {
        if (e?.code !== 'function_not_found' || Date.now() > until) {
          emit({ event: 'traced', span_name: spanName, trace_id: traceId, span_id: spanId, ok: false, error: errorJSON(e) })
          return
        }
        await sleep(100)
      }
    }
  })

  // Resolves once the span was handed to the /otel socket; shutdown() alone
  // would drop it if that socket were not open yet.
  await flushOtel()
  emit({ event: 'flushed' })
  await shutdownAndExit(iii)
})
