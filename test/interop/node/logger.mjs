// Emits log records through the SDK's OTel Logger. They leave on the separate
// <III_URL>/otel WebSocket as binary frames "LOGS" + OTLP/JSON (one frame per
// record with the default batch size 1), not as engine::log::* calls.
// OTel is forced on here (otel.enabled), whatever OTEL_ENABLED says.
//
// Logger is not exported by iii-sdk 0.22.1 (its docs say `import { Logger } from
// 'iii-sdk'`, which fails); it lives in @iii-dev/helpers/observability.
//
// env: III_URL, LOG_MARK (interop-log: prefix of every message), TIMEOUT_MS (20000)
// out: {"event":"ready","worker_id"}
//      {"event":"logged","records":[{"level","message","data"}]}
//      {"event":"flushed"} {"event":"shutdown"}
import { Logger, flushOtel } from '@iii-dev/helpers/observability'
import { connect, deadline, emit, env, ready, run, shutdownAndExit } from './lib.mjs'

run(async () => {
  deadline(20000)
  const mark = env('LOG_MARK', 'interop-log')
  const iii = connect({ otel: { enabled: true } })
  emit({ event: 'ready', worker_id: await ready(iii) })

  const logger = new Logger(undefined, 'interop-logger')
  const records = ['info', 'warn', 'error', 'debug'].map((level, seq) => ({
    level,
    message: `${mark} ${level} #${seq}`,
    data: { seq, level, mark },
  }))
  for (const r of records) logger[r.level](r.message, r.data)
  emit({ event: 'logged', records })

  // Resolves once every batch was handed to the /otel socket (it waits for that
  // socket to open). shutdown() would flush too, but gives up on a socket that is
  // not open yet.
  await flushOtel()
  emit({ event: 'flushed' })
  await shutdownAndExit(iii)
})
