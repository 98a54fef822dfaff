// Shared plumbing for the interop scripts: JSON-lines output, env parsing, an
// overall deadline, "ready" detection and clean shutdown.
//
// stdout carries only JSON lines written by emit(). The SDK prints chatter with
// console.log/console.debug ("[iii] Worker registered with ID: ...", "[OTel]
// Connected to engine at ..."), which would land on stdout, so those console
// methods are redirected to stderr (the SDK looks them up at call time).
import { registerWorker } from 'iii-sdk'

for (const m of ['log', 'info', 'debug']) console[m] = (...args) => console.error(...args)

/** Writes one JSON object as one line on stdout. */
export function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

export function env(name, fallback) {
  const v = process.env[name]
  return v === undefined || v === '' ? fallback : v
}

export function envInt(name, fallback) {
  const v = env(name, undefined)
  if (v === undefined) return fallback
  const n = Number(v)
  if (!Number.isInteger(n)) die(`${name} must be an integer, got ${JSON.stringify(v)}`)
  return n
}

export function envJSON(name, fallback) {
  const v = env(name, undefined)
  if (v === undefined) return fallback
  try {
    return JSON.parse(v)
  } catch (e) {
    die(`${name} is not valid JSON: ${e.message}`)
  }
}

/** Comma-separated list, blanks dropped. */
export function envList(name, fallback = []) {
  const v = env(name, undefined)
  return v === undefined ? fallback : v.split(',').map((s) => s.trim()).filter(Boolean)
}

/** Prints the reason on stderr and exits non-zero at once. */
export function die(msg, code = 1) {
  process.stderr.write(`FAIL: ${msg}\n`)
  process.exit(code)
}

/** Hard deadline for the whole script (TIMEOUT_MS overrides the default). */
export function deadline(defaultMs) {
  const ms = envInt('TIMEOUT_MS', defaultMs)
  setTimeout(() => die(`overall timeout after ${ms} ms`, 124), ms)
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** The engine URL; iii-sdk itself never reads III_URL (only its OTel fallback does). */
export function engineURL() {
  const url = env('III_URL', undefined)
  if (!url) die('III_URL is not set')
  return url
}

/** registerWorker(III_URL, options). Honours the SDK's own env (OTEL_ENABLED, III_WORKER_NAME, ...). */
export function connect(options = {}) {
  return registerWorker(engineURL(), { invocationTimeoutMs: envInt('CALL_TIMEOUT_MS', 5000), ...options })
}

/**
 * Waits until the engine has processed everything this worker sent on connect.
 * workerId is set by the first `workerregistered` (an SDK-internal field), which
 * arrives after onSocketOpen has written reattach + replay + metadata. One
 * synchronous round trip on the same socket then proves the engine has read
 * those frames (it reads a connection's frames in order). Any answer counts,
 * including an error, so a double without engine::functions::list still works.
 */
export async function ready(iii) {
  while (!iii.workerId) await sleep(10)
  try {
    await iii.trigger({ function_id: 'engine::functions::list', payload: {} })
  } catch (e) {
    if (e?.code === 'TIMEOUT') throw e
  }
  return iii.workerId
}

/** Plain JSON view of an error from iii.trigger(). */
export function errorJSON(e) {
  const code = e?.code ?? null
  const full = e?.message ?? String(e)
  // InvocationError.message is "<code>: <wire message>"; strip the prefix back off.
  const message = code && full.startsWith(`${code}: `) ? full.slice(code.length + 2) : full
  return {
    name: e?.name ?? null,
    code,
    message,
    error_message: full,
    function_id: e?.function_id ?? null,
    stacktrace: e?.stacktrace ?? null,
  }
}

/**
 * Resolves when the script should stop: stdin reaches EOF (the parent closed
 * the pipe or died), SIGTERM or SIGINT. Spawn with a stdin pipe you keep open
 * (exec.Cmd.StdinPipe); a nil Stdin is /dev/null and ends at once.
 */
export function untilStopped() {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
    if (env('EXIT_ON_STDIN_EOF', '1') !== '0') {
      process.stdin.on('end', () => resolve('stdin closed'))
      process.stdin.on('error', () => resolve('stdin error'))
      process.stdin.resume()
    }
  })
}

/**
 * iii.shutdown() flushes OTel, rejects pending calls and sends a Close on the
 * worker socket, but does not wait for the closing handshake (and ws keeps a
 * 30 s close timer alive), so exit explicitly.
 */
export async function shutdownAndExit(iii, code = 0) {
  if (iii) await iii.shutdown()
  // shutdown() rejects pending calls; let their handlers print before exiting.
  await new Promise((r) => setImmediate(r))
  emit({ event: 'shutdown' })
  process.exit(code)
}

/** Runs main(), turning any throw into a non-zero exit with the reason on stderr. */
export function run(main) {
  main().catch((e) => die(e?.stack ?? String(e)))
}
