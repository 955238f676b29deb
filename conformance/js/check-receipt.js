#!/usr/bin/env node
// Checks NodeVMS receipts the way a hypercore peer checks a downloaded
// block: for each receipt file, an empty in-memory feed with the receipt's
// log key puts the entry with the receipt's proof (nodes and signature),
// which verifies them, and reads the entry back. Prints one JSON line per
// file: {file, ok, length, error}.
//
//   node check-receipt.js FILE...
'use strict'

const fs = require('fs')
const { promisify } = require('util')
const hypercore = require('hypercore')
const ram = require('random-access-memory')

async function check (file) {
  const r = JSON.parse(fs.readFileSync(file, 'utf8'))
  const feed = hypercore(ram, Buffer.from(r.log, 'hex'))
  await promisify(feed.ready.bind(feed))()
  const entry = Buffer.from(r.entry, 'base64')
  const proof = {
    nodes: r.nodes.map((n) => ({ index: n.index, size: n.size, hash: Buffer.from(n.hash, 'hex') })),
    signature: Buffer.from(r.signature, 'hex')
  }
  try {
    await promisify(feed.put.bind(feed))(r.index, entry, proof)
    const got = await promisify(feed.get.bind(feed))(r.index)
    if (!got.equals(entry)) throw new Error('the entry read back differs')
    return { file, ok: true, length: feed.length }
  } catch (err) {
    return { file, ok: false, error: err.message }
  } finally {
    await promisify(feed.close.bind(feed))()
  }
}

async function main () {
  for (const file of process.argv.slice(2)) {
    process.stdout.write(JSON.stringify(await check(file)) + '\n')
  }
}

main().catch((err) => {
  console.error(err.stack || err)
  process.exit(1)
})
