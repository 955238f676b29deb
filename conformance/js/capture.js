#!/usr/bin/env node
// The deterministic wire capture: a scripted download with one request in
// flight and seeded randomness, recording the exact bytes the serving peer
// sends. The same client runs against the reference server (to make the
// capture) and against a Go server (to compare with it).
//
//   node capture.js serve SEED BATCHES_FILE
//     A reference server with fixed randomness (every random byte 0x2a, so
//     its nonce is 24 of them) and the peer id ID below; prints {"port": N}.
//   node capture.js client PORT KEY
//     Downloads every block with maxRequests 1 and a seeded Math.random,
//     then prints {"server": hex of every byte the server sent}.
'use strict'

const net = require('net')
const { promisify } = require('util')

const SERVER_ID = Buffer.alloc(32, 0x5a)

// Fixed randomness, installed before the stack is loaded.
const sodium = require('sodium-universal')
sodium.randombytes_buf = (buf) => buf.fill(0x2a)
let seed = 12345
Math.random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}

const hypercore = require('hypercore')
const ram = require('random-access-memory')
const hcrypto = require('hypercore-crypto')

async function serve ([seedHex, batchesFile]) {
  const keyPair = hcrypto.keyPair(Buffer.from(seedHex, 'hex'))
  const feed = hypercore(ram, keyPair.publicKey, { secretKey: keyPair.secretKey })
  await promisify(feed.ready.bind(feed))()
  const batches = JSON.parse(require('fs').readFileSync(batchesFile, 'utf8'))
  for (const batch of batches) await promisify(feed.append.bind(feed))(batch.map((b) => Buffer.from(b, 'hex')))
  const server = net.createServer((socket) => {
    const stream = feed.replicate({ id: SERVER_ID })
    socket.pipe(stream).pipe(socket)
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'))
}

async function client ([port, key]) {
  const feed = hypercore(ram, Buffer.from(key, 'hex'), { maxRequests: 1 })
  await promisify(feed.ready.bind(feed))()
  const socket = net.connect(Number(port), '127.0.0.1')
  const received = []
  socket.on('data', (d) => received.push(Buffer.from(d)))
  const stream = feed.replicate({ maxRequests: 1 })
  socket.pipe(stream).pipe(socket)
  socket.on('close', () => {
    process.stdout.write(JSON.stringify({ length: feed.length, server: Buffer.concat(received).toString('hex') }) + '\n', () => process.exit(0))
  })
  setTimeout(() => { console.error('capture: the server did not end the stream'); process.exit(1) }, 20000)
}

const [mode, ...args] = process.argv.slice(2)
;(mode === 'serve' ? serve : client)(args).catch((err) => {
  console.error(err.stack || err)
  process.exit(1)
})
