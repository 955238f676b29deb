#!/usr/bin/env node
// Measures the JavaScript reference's append rate on this machine, the same
// workloads as the Go benchmarks in ../hypercore_bench_test.go: 100-byte
// blocks appended one at a time (each its own signed batch), and in batches
// of 1000. Prints one JSON object.
//
//   node append.js [SECONDS]
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const { promisify } = require('util')
const hypercore = require('hypercore')
const sodium = require('sodium-universal')

const seconds = Number(process.argv[2] || 2)

function crypto () {
  let native = false
  try { native = sodium === require('sodium-native') } catch (_) {}
  return native ? 'sodium-native ' + require('sodium-native-real/package.json').version : 'sodium-javascript (pure JS)'
}

async function openFeed (dir) {
  const feed = hypercore(dir)
  await promisify(feed.ready.bind(feed))()
  return feed
}

// run appends batches of size n until the time is up and returns blocks/s.
async function run (dir, n) {
  const feed = await openFeed(dir)
  const append = promisify(feed.append.bind(feed))
  const batch = []
  for (let i = 0; i < n; i++) batch.push(Buffer.alloc(100, i & 255))
  const value = n === 1 ? batch[0] : batch
  // Warm up, then measure.
  for (let i = 0; i < 20; i++) await append(value)
  let blocks = 0
  const start = process.hrtime.bigint()
  const deadline = start + BigInt(Math.round(seconds * 1e9))
  let now = start
  while (now < deadline) {
    for (let i = 0; i < 10; i++) await append(value)
    blocks += 10 * n
    now = process.hrtime.bigint()
  }
  await promisify(feed.close.bind(feed))()
  return blocks / (Number(now - start) / 1e9)
}

async function main () {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hypercore-bench-'))
  try {
    const out = {
      reference: 'hypercore@' + require('hypercore/package.json').version,
      crypto: crypto(),
      node: process.version,
      singleBlocksPerSec: await run(path.join(tmp, 'single'), 1),
      batchBlocksPerSec: await run(path.join(tmp, 'batch'), 1000)
    }
    process.stdout.write(JSON.stringify(out) + '\n')
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err.stack || err)
  process.exit(1)
})
