// The Node peer of cmd/bench, on the official Node SDK (iii-sdk).
//
//   node peer.mjs handler   serves <BENCH_PREFIX>echo (returns its input) and
//                           <BENCH_PREFIX>sink (returns nothing) until stdin closes
//   node peer.mjs caller    drives CONC calls of FN in flight: WARMUP_MS, then
//                           DURATION_MS measured; MODE=void sends 64 void calls
//                           then one awaited call of ECHO_FN per loop
//
// stdout carries only JSON lines: {"event":"ready"} (handler),
// {"event":"measuring"} then {"event":"result",ok,errors,seconds,lat_us,first_error,unfinished}
// (caller; unfinished: loops whose call had not settled 10 s after the window). See cmd/bench/peer.go for the protocol.
import { readFileSync } from 'node:fs'
import { registerWorker, TriggerAction } from 'iii-sdk'

// The SDK prints chatter with console.log; stdout is the protocol's.
for (const m of ['log', 'info', 'debug']) console[m] = (...args) => console.error(...args)

const env = (name, fallback) => process.env[name] || fallback
// Resolves once the line is handed to the OS: a pipe write may be
// asynchronous, and process.exit would cut a long result line short.
const emit = (obj) => new Promise((resolve) => process.stdout.write(`${JSON.stringify(obj)}\n`, resolve))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const iii = registerWorker(env('III_URL', 'ws://127.0.0.1:49134'), { invocationTimeoutMs: 30000 })

async function waitCallable(fn) {
  const until = Date.now() + 30000
  for (;;) {
    try {
      return await iii.trigger({ function_id: fn, payload: {} })
    } catch (e) {
      if (Date.now() > until) throw e
      await sleep(20)
    }
  }
}

async function handler() {
  const prefix = env('BENCH_PREFIX', 'bench::peer.node::')
  iii.registerFunction(`${prefix}echo`, async (input) => input)
  iii.registerFunction(`${prefix}sink`, async () => null)
  await waitCallable(`${prefix}echo`)
  await emit({ event: 'ready', pid: process.pid })
  await new Promise((resolve) => {
    process.stdin.on('end', resolve)
    process.stdin.on('error', resolve)
    process.stdin.resume()
  })
}

async function caller() {
  const fn = env('FN', '')
  const echo = env('ECHO_FN', '')
  const isVoid = env('MODE', 'call') === 'void'
  const conc = Number(env('CONC', '1'))
  const warmup = Number(env('WARMUP_MS', '300'))
  const duration = Number(env('DURATION_MS', '1200'))
  const payload = JSON.parse(readFileSync(env('PAYLOAD_FILE', ''), 'utf8'))
  await waitCallable(echo)

  let measuring = false
  let stop = false
  let ok = 0
  let errors = 0
  let firstError = null
  const lat = []
  let finished = 0
  // An awaited call whose promise never settles must not let Node exit
  // quietly with an empty event loop: keep it alive, and bound the wind-down.
  const keepAlive = setInterval(() => {}, 1000)
  const loop = async () => {
    while (!stop) {
      const t0 = process.hrtime.bigint()
      try {
        if (isVoid) {
          for (let i = 0; i < 64; i++) {
            await iii.trigger({ function_id: fn, payload, action: TriggerAction.Void() })
          }
          await iii.trigger({ function_id: echo, payload: {} })
        } else {
          await iii.trigger({ function_id: fn, payload })
        }
        if (measuring) {
          ok += isVoid ? 64 : 1
          if (!isVoid) lat.push(Number((process.hrtime.bigint() - t0) / 1000n))
        }
      } catch (e) {
        errors++
        firstError ??= String(e?.message ?? e)
        await sleep(1)
      }
    }
    finished++
  }
  const loops = Array.from({ length: conc }, loop)
  await sleep(warmup)
  await emit({ event: 'measuring' })
  measuring = true
  const t0 = process.hrtime.bigint()
  await sleep(duration)
  measuring = false
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const okN = ok
  stop = true
  await Promise.race([Promise.all(loops), sleep(10000)])
  clearInterval(keepAlive)
  await emit({ event: 'result', ok: okN, errors, seconds, lat_us: lat, first_error: firstError, unfinished: conc - finished })
}

const mode = process.argv[2]
try {
  if (mode === 'handler') await handler()
  else if (mode === 'caller') await caller()
  else throw new Error('usage: node peer.mjs handler|caller')
  await iii.shutdown()
  process.exit(0)
} catch (e) {
  process.stderr.write(`FAIL: ${e?.stack ?? e}\n`)
  process.exit(1)
}
