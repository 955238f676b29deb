#!/usr/bin/env node
// Writes a feed with the reference: key pair from SEED (hex), then appends
// the batches in BATCHES_FILE, JSON: an array of arrays of hex blocks.
//
//   node write-feed.js DIR SEED BATCHES_FILE [legacy]
'use strict'

const { promisify } = require('util')
const [dir, seed, batchesFile, legacy] = process.argv.slice(2)
const hypercore = require(legacy === 'legacy' ? 'hypercore-legacy' : 'hypercore')
const hcrypto = require('hypercore-crypto')

async function main () {
  const keyPair = hcrypto.keyPair(Buffer.from(seed, 'hex'))
  const feed = hypercore(dir, keyPair.publicKey, { secretKey: keyPair.secretKey })
  await promisify(feed.ready.bind(feed))()
  for (const batch of JSON.parse(require('fs').readFileSync(batchesFile, 'utf8'))) {
    await promisify(feed.append.bind(feed))(batch.map((b) => Buffer.from(b, 'hex')))
  }
  await promisify(feed.close.bind(feed))()
}

main().catch((err) => {
  console.error(err.stack || err)
  process.exit(1)
})
