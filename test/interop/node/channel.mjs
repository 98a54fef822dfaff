// Data channels through the SDK's ChannelWriter/ChannelReader.
//
// Data written: BYTES bytes, byte i = (i*31 + 7) & 0xff, cut into MESSAGES+1
// nearly equal parts (part k = bytes [floor(k*BYTES/(MESSAGES+1)), floor((k+1)*BYTES/(MESSAGES+1))));
// after part k (k < MESSAGES) one text frame JSON {"seq":k,"text":"message k ✓"}.
// Binary parts go out in frames of at most 64 KiB (the SDK's chunking).
// Each summary has: bytes, sha256 (hex of all binary bytes), messages (text
// frames in order) and offsets (for each message, the binary byte count before it).
//
// MODE=create-and-write  engine::channels::create (via createChannel), print both refs, write, close.
//   env: BUFFER_SIZE (unset: engine default), WRITE_DELAY_MS (0: wait before writing)
//   out: {"event":"channel","reader":ref,"writer":ref} then {"event":"written",...summary}
// MODE=read   env READER_REF (JSON ref, direction "read"): read to EOF.   out: {"event":"read",...summary}
// MODE=write  env WRITER_REF (JSON ref, direction "write"): write, close. out: {"event":"written",...summary}
// MODE=self   create, then write and read in this process.
//   out: {"event":"channel",...}, {"event":"written",...}, {"event":"read",...}, {"event":"self","match":bool}
// MODE=serve  a worker with two functions (refs in the input become Reader/Writer objects):
//   CHANNEL_READ_FN  (interop::channel-read):  input {"reader": ref} -> returns the read summary
//   CHANNEL_WRITE_FN (interop::channel-write): input {"writer": ref, "bytes"?, "messages"?} -> returns the written summary
//   out: {"event":"ready","worker_id"}, {"event":"served","function_id","summary"}; runs until stdin EOF/SIGTERM.
// Common env: III_URL, BYTES (200000), MESSAGES (3), TIMEOUT_MS (20000; serve 60000).
import { createHash } from 'node:crypto'
import { ChannelReader, ChannelWriter } from 'iii-sdk/channel'
import { createChannel } from 'iii-sdk/helpers'
import { connect, deadline, die, emit, engineURL, env, envInt, envJSON, ready, run, shutdownAndExit, sleep, untilStopped } from './lib.mjs'

const pattern = (n) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff)
const message = (k) => JSON.stringify({ seq: k, text: `message ${k} ✓` })

async function writeAll(writer, total, count) {
  const data = Buffer.from(pattern(total))
  const messages = []
  const offsets = []
  const stream = writer.stream
  const failed = new Promise((_, reject) => stream.on('error', reject))
  failed.catch(() => {}) // only step() reports it
  const step = (p) => Promise.race([p, failed])
  // With nothing to write the SDK would never open the socket, and the reader would
  // wait for the engine's sweep; open it explicitly (SDK-internal method).
  if (total === 0 && count === 0) writer.ensureConnected()
  for (let k = 0; k <= count; k++) {
    const part = data.subarray(Math.floor((k * total) / (count + 1)), Math.floor(((k + 1) * total) / (count + 1)))
    // Wait for each write so the text frame below cannot overtake queued binary chunks.
    if (part.length > 0) await step(new Promise((resolve, reject) => stream.write(part, (e) => (e ? reject(e) : resolve()))))
    if (k < count) {
      offsets.push(Math.floor(((k + 1) * total) / (count + 1)))
      messages.push(message(k))
      writer.sendMessage(message(k))
    }
  }
  // end(): the SDK waits 10 ms, sends Close 1000 "stream_complete", then (autoDestroy) terminates the socket.
  const closed = new Promise((resolve) => stream.once('close', resolve))
  await step(new Promise((resolve) => stream.end(resolve)))
  await closed
  return { bytes: total, sha256: createHash('sha256').update(data).digest('hex'), messages, offsets }
}

async function readAll(reader) {
  const messages = []
  const offsets = []
  let received = 0
  reader.onMessage((m) => {
    messages.push(m)
    offsets.push(received)
  })
  const all = reader.readAll() // opens the socket synchronously
  // Count binary bytes in arrival order on the SDK's own socket (an internal field),
  // registered after the SDK's listener, so a text frame sees the bytes before it.
  reader.ws.on('message', (data, isBinary) => {
    if (isBinary) received += data.length
  })
  const buf = await all
  return { bytes: buf.length, sha256: createHash('sha256').update(buf).digest('hex'), messages, offsets }
}

const total = envInt('BYTES', 200000)
const count = envInt('MESSAGES', 3)

const modes = {
  async 'create-and-write'() {
    const iii = connect()
    const ch = await createChannel(iii, envInt('BUFFER_SIZE', undefined))
    emit({ event: 'channel', reader: ch.readerRef, writer: ch.writerRef })
    await sleep(envInt('WRITE_DELAY_MS', 0))
    emit({ event: 'written', ...(await writeAll(ch.writer, total, count)) })
    await shutdownAndExit(iii)
  },
  async read() {
    emit({ event: 'read', ...(await readAll(new ChannelReader(engineURL(), envJSON('READER_REF')))) })
    process.exit(0)
  },
  async write() {
    emit({ event: 'written', ...(await writeAll(new ChannelWriter(engineURL(), envJSON('WRITER_REF')), total, count)) })
    process.exit(0)
  },
  async self() {
    const iii = connect()
    const ch = await createChannel(iii, envInt('BUFFER_SIZE', undefined))
    emit({ event: 'channel', reader: ch.readerRef, writer: ch.writerRef })
    const [written, read] = await Promise.all([writeAll(ch.writer, total, count), readAll(ch.reader)])
    emit({ event: 'written', ...written })
    emit({ event: 'read', ...read })
    const match = JSON.stringify(written) === JSON.stringify(read)
    emit({ event: 'self', match })
    if (!match) die('read side differs from written side')
    await shutdownAndExit(iii)
  },
  async serve() {
    const iii = connect()
    const readFn = env('CHANNEL_READ_FN', 'interop::channel-read')
    const writeFn = env('CHANNEL_WRITE_FN', 'interop::channel-write')
    iii.registerFunction(readFn, async (input) => {
      if (!(input?.reader instanceof ChannelReader)) throw new Error('input.reader is not a read channel ref')
      const summary = await readAll(input.reader)
      emit({ event: 'served', function_id: readFn, summary })
      return summary
    })
    iii.registerFunction(writeFn, async (input) => {
      if (!(input?.writer instanceof ChannelWriter)) throw new Error('input.writer is not a write channel ref')
      const summary = await writeAll(input.writer, input.bytes ?? total, input.messages ?? count)
      emit({ event: 'served', function_id: writeFn, summary })
      return summary
    })
    emit({ event: 'ready', worker_id: await ready(iii) })
    emit({ event: 'stopping', reason: await untilStopped() })
    await shutdownAndExit(iii)
  },
}

run(async () => {
  const mode = env('MODE', 'self')
  if (!modes[mode]) die(`unknown MODE ${mode} (want ${Object.keys(modes).join('|')})`)
  deadline(mode === 'serve' ? 60000 : 20000)
  await modes[mode]()
})
