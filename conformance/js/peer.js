#!/usr/bin/env node
// A reference Dat peer for the live interop tests, over plain TCP (as dat
// peers speak it: the bare protocol, no preamble).
//
//   node peer.js serve SEED BATCHES_FILE [live]
//     Writes a feed from SEED and the batches (JSON: arrays of hex blocks)
//     in memory, listens on 127.0.0.1 (a free port), prints
//     {"port": N, "key": HEX}, and serves every connection. Each line
//     "append HEX" on stdin appends a block; the process ends when stdin
//     closes.
//
//   node peer.js download HOST PORT KEY [live N] [blocks I,J,...]
//     Replicates the feed KEY from HOST:PORT into memory: every block, or
//     only the listed ones (sparse); live waits for N blocks. Verifies and
//     prints {"length": N, "blocks": {index: hex}}.
'use strict'

const net = require('net')
const readline = require('readline')
const { promisify } = require('util')
const hypercore = require('hypercore')
const ram = require('random-access-memory')
const hcrypto = require('hypercore-crypto')

async function serve ([seed, batchesFile, live]) {
  const keyPair = hcrypto.keyPair(Buffer.from(seed, 'hex'))
  const feed = hypercore(ram, keyPair.publicKey, { secretKey: keyPair.secretKey })
  await promisify(feed.ready.bind(feed))()
  const batches = JSON.parse(require('fs').readFileSync(batchesFile, 'utf8'))
  for (const batch of batches) await promisify(feed.append.bind(feed))(batch.map((b) => Buffer.from(b, 'hex')))

  const server = net.createServer((socket) => {
    const stream = feed.replicate({ live: live === 'live' })
    socket.pipe(stream).pipe(socket)
    socket.on('error', () => {})
    stream.on('error', () => socket.destroy())
  })
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: server.address().port, key: feed.key.toString('hex') }) + '\n')
  })
  const lines = readline.createInterface({ input: process.stdin })
  lines.on('line', (line) => {
    const [cmd, arg] = line.trim().split(' ')
    if (cmd === 'append') feed.append(Buffer.from(arg || '', 'hex'), () => process.stdout.write('appended\n'))
  })
  lines.on('close', () => process.exit(0))
}

async function download ([host, port, key, ...rest]) {
  let live = false
  let until = 0
  let blocks = null
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === 'live') { live = true; until = Number(rest[++i]) }
    if (rest[i] === 'blocks') blocks = rest[++i].split(',').map(Number)
  }
  const feed = hypercore(ram, Buffer.from(key, 'hex'), { sparse: !!blocks })
  await promisify(feed.ready.bind(feed))()
  const socket = net.connect(Number(port), host)
  const stream = feed.replicate({ live })
  socket.pipe(stream).pipe(socket)
  stream.on('error', (err) => { console.error('stream:', err.message) })

  const get = promisify(feed.get.bind(feed))
  const out = {}
  if (blocks) {
    for (const i of blocks) out[i] = (await get(i)).toString('hex')
  } else {
    await promisify(feed.update.bind(feed))(Math.max(until, 1))
    const target = Math.max(until, feed.length)
    for (let i = 0; i < target; i++) out[i] = (await get(i)).toString('hex')
  }
  socket.destroy()
  // Exit only once stdout is flushed: a pipe takes large writes in pieces.
  process.stdout.write(JSON.stringify({ length: feed.length, blocks: out }) + '\n', () => process.exit(0))
}

// Two feeds on one stream, as a hyperdrive replicates its metadata (channel
// 0) and content (channel 1):
//
//   node peer.js serve-two SEED1 SEED2 BATCHES_FILE
//     Like serve, with a second feed whose blocks are the first's reversed;
//     prints {"port": N, "keys": [HEX, HEX]}.
//   node peer.js download-two HOST PORT KEY1 KEY2
//     Downloads both over one stream; prints [{"length", "blocks"}, ...].
async function serveTwo ([seed1, seed2, batchesFile]) {
  const batches = JSON.parse(require('fs').readFileSync(batchesFile, 'utf8'))
  const feeds = []
  for (const [seed, reverse] of [[seed1, false], [seed2, true]]) {
    const keyPair = hcrypto.keyPair(Buffer.from(seed, 'hex'))
    const feed = hypercore(ram, keyPair.publicKey, { secretKey: keyPair.secretKey })
    await promisify(feed.ready.bind(feed))()
    for (const batch of batches) {
      await promisify(feed.append.bind(feed))(batch.map((b) => Buffer.from(b, 'hex')).map((b) => reverse ? Buffer.from(b).reverse() : b))
    }
    feeds.push(feed)
  }
  const server = net.createServer((socket) => {
    const stream = feeds[0].replicate({ expectedFeeds: 2 })
    feeds[1].replicate({ stream })
    socket.pipe(stream).pipe(socket)
    socket.on('error', () => {})
    stream.on('error', () => socket.destroy())
  })
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: server.address().port, keys: feeds.map((f) => f.key.toString('hex')) }) + '\n')
  })
  readline.createInterface({ input: process.stdin }).on('close', () => process.exit(0))
}

async function downloadTwo ([host, port, key1, key2]) {
  const feeds = []
  for (const key of [key1, key2]) {
    const feed = hypercore(ram, Buffer.from(key, 'hex'))
    await promisify(feed.ready.bind(feed))()
    feeds.push(feed)
  }
  const socket = net.connect(Number(port), host)
  const stream = feeds[0].replicate({ expectedFeeds: 2 })
  feeds[1].replicate({ stream })
  socket.pipe(stream).pipe(socket)
  stream.on('error', (err) => { console.error('stream:', err.message) })
  const out = []
  for (const feed of feeds) {
    await promisify(feed.update.bind(feed))(1)
    const blocks = {}
    for (let i = 0; i < feed.length; i++) blocks[i] = (await promisify(feed.get.bind(feed))(i)).toString('hex')
    out.push({ length: feed.length, blocks })
  }
  socket.destroy()
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0))
}

const [mode, ...args] = process.argv.slice(2)
const run = { serve, download, 'serve-two': serveTwo, 'download-two': downloadTwo }[mode]
run(args).catch((err) => {
  console.error(err.stack || err)
  process.exit(1)
})
