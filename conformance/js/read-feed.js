#!/usr/bin/env node
// Opens a feed directory with the reference, checks every block against the
// tree (audit) and every stored signature against the roots it signs, and
// prints what it found as JSON: {length, byteLength, blocks (hex), audit,
// signatures: [{index, valid}]}.
//
//   node read-feed.js DIR [legacy]
'use strict'

const { promisify } = require('util')
const [dir, legacy] = process.argv.slice(2)
const hypercore = require(legacy === 'legacy' ? 'hypercore-legacy' : 'hypercore')

async function main () {
  const feed = hypercore(dir, { createIfMissing: false })
  await promisify(feed.ready.bind(feed))()
  const audit = await promisify(feed.audit.bind(feed))()
  const blocks = []
  const signatures = []
  const sig = promisify(feed._storage._getSignature.bind(feed._storage))
  const verify = promisify(feed.verify.bind(feed))
  for (let i = 0; i < feed.length; i++) {
    blocks.push((await promisify(feed.get.bind(feed))(i)).toString('hex'))
    const s = await sig(i)
    if (s.every((b) => b === 0)) continue
    signatures.push({ index: i, valid: await verify(i, s).then(() => true, () => false) })
  }
  const out = { length: feed.length, byteLength: feed.byteLength, blocks, audit, signatures }
  await promisify(feed.close.bind(feed))()
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((err) => {
  console.error(err.stack || err)
  process.exit(1)
})
