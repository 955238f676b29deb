#!/usr/bin/env node
// Replication throughput of the JavaScript reference over loopback TCP,
// for bench/compare-replication.
//
//   node replicate.js serve COUNT SIZE
//     Writes COUNT blocks of SIZE bytes into a feed in memory, serves it on
//     a free port and prints {"port": N, "key": HEX}; ends when stdin closes.
//   node replicate.js download PORT KEY
//     Downloads the whole feed into memory, verifying every block, and
//     prints {"blocks": N, "bytes": N, "seconds": S, "crypto": ...}.
'use strict'

const net = require('net')
const readline = require('readline')
const { promisify } = require('util')
const hypercore = require('hypercore')
const ram = require('random-access-memory')
const sodium = require('sodium-universal')

function crypto () {
  let native = false
  try { native = sodium === require('sodium-native') && !!require('sodium-native').crypto_stream_xor_init } catch (_) {}
  return native ? 'sodium-native ' + require('sodium-native-real/package.json').version : 'sodium-javascript (pure JS)'
}

// checkCipher holds the native stream cipher (the shim in sodium-shim/) to
// sodium-javascript's, byte for byte, before anything is measured with it.
function checkCipher () {
  const sj = require('sodium-javascript')
  const key = Buffer.alloc(32, 7)
  const nonce = Buffer.alloc(24, 3)
  const a = sodium.crypto_stream_xor_instance(nonce, key)
  const b = sj.crypto_stream_xor_instance(nonce, key)
  for (const n of [1, 63, 64, 65, 1000, 3, 70000]) {
    const x = Buffer.alloc(n, n & 255)
    const y = Buffer.alloc(n, n & 255)
    a.update(x, x)
    b.update(y, y)
    if (!x.equals(y)) throw new Error('the native stream cipher differs from sodium-javascript')
  }
}

async function serve ([count, size]) {
  const feed = hypercore(ram)
  await promisify(feed.ready.bind(feed))()
  const append = promisify(feed.append.bind(feed))
  count = Number(count)
  size = Number(size)
  const perBatch = Math.max(1, Math.min(1000, Math.floor((16 << 20) / size)))
  for (let i = 0; i < count; i += perBatch) {
    const batch = []
    for (let j = i; j < Math.min(i + perBatch, count); j++) batch.push(Buffer.alloc(size, j & 255))
    await append(batch)
  }
  const server = net.createServer((socket) => {
    socket.pipe(feed.replicate()).pipe(socket)
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: server.address().port, key: feed.key.toString('hex') }) + '\n')
  })
  readline.createInterface({ input: process.stdin }).on('close', () => process.exit(0))
}

async function download ([port, key]) {
  const feed = hypercore(ram, Buffer.from(key, 'hex'))
  await promisify(feed.ready.bind(feed))()
  const start = process.hrtime.bigint()
  const socket = net.connect(Number(port), '127.0.0.1')
  let done = false
  socket.on('error', (err) => {
    // After the download, the other side closing early (EPIPE) is no news.
    if (done) return
    console.error('download: ' + err.message)
    process.exit(1)
  })
  socket.pipe(feed.replicate()).pipe(socket)
  await promisify(feed.update.bind(feed))(1)
  // Count downloads (feed.downloaded() scans the bitfield: too slow here).
  await new Promise((resolve) => {
    let have = feed.downloaded()
    if (have === feed.length) return resolve()
    feed.on('download', () => { if (++have === feed.length) resolve() })
  })
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  done = true
  socket.destroy()
  process.stdout.write(JSON.stringify({ blocks: feed.length, bytes: feed.byteLength, seconds, crypto: crypto() }) + '\n', () => process.exit(0))
}

checkCipher()
const [mode, ...args] = process.argv.slice(2)
;(mode === 'serve' ? serve : download)(args).catch((err) => {
  console.error(err.stack || err)
  process.exit(1)
})
