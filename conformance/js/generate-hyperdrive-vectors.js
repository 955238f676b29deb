#!/usr/bin/env node
// Writes the hyperdrive test vectors under <out>/hyperdrive/ from the pinned
// reference (hyperdrive 9 on hypercore 6): a scripted sequence of archive
// operations from a fixed key, with every time given explicitly, and after
// each step the new metadata and content blocks, both feeds' roots and
// latest signatures, and what listing and stat report.
//
//   npm ci && node generate-hyperdrive-vectors.js ../testdata
'use strict'

const fs = require('fs')
const path = require('path')
const { promisify } = require('util')

const hyperdrive = require('hyperdrive')
const ram = require('random-access-memory')
const hcrypto = require('hypercore-crypto')

const REFERENCE = 'hyperdrive@' + require('hyperdrive/package.json').version

const hex = (b) => Buffer.from(b).toString('hex')
const T0 = 1500000000000 // a fixed time, in ms

function pattern (p, size) {
  const b = Buffer.alloc(size)
  for (let j = 0; j < size; j++) b[j] = (p + 7 * j) & 255
  return b
}

// Each step is one operation; data is hex, or {pattern, size}.
const STEPS = [
  { op: 'writeFile', path: '/hello.txt', data: hex('hello world'), time: T0 + 1 },
  { op: 'mkdir', path: '/a', time: T0 + 2 },
  { op: 'writeFile', path: 'a/b/c.txt', data: hex('nested'), time: T0 + 3 },
  { op: 'writeFile', path: '/a/x.txt', data: hex('x'), time: T0 + 4 },
  { op: 'writeFile', path: '/hello.txt', data: hex('hello again, world'), time: T0 + 5 },
  { op: 'writeFile', path: '/empty', data: '', time: T0 + 6 },
  { op: 'writeFile', path: '/big.bin', data: { pattern: 3, size: 200 * 1024 }, time: T0 + 7 },
  { op: 'unlink', path: '/a/x.txt' },
  { op: 'mkdir', path: '/d', time: T0 + 8 },
  { op: 'writeFile', path: '/d/../d/./e.txt', data: hex('e'), time: T0 + 9 },
  { op: 'unlink', path: '/d/e.txt' },
  { op: 'rmdir', path: '/d' },
  { op: 'unlink', path: '/a/b/c.txt' },
  { op: 'writeFile', path: '/a/b/d.txt', data: hex('d'), time: T0 + 10 },
  { op: 'writeFile', path: '/z/deep/deeper/f', data: { pattern: 9, size: 65536 }, time: T0 + 11 },
  { op: 'writeFile', path: '/z/g', data: { pattern: 11, size: 65537 }, time: T0 + 12 },
  { op: 'unlink', path: '/big.bin' },
  { op: 'mkdir', path: '/a', time: T0 + 13 }
]

function dataOf (spec) {
  if (typeof spec === 'string') return Buffer.from(spec, 'hex')
  return pattern(spec.pattern, spec.size)
}

async function feedState (feed) {
  const blocks = []
  for (let i = 0; i < feed.length; i++) blocks.push(hex(await promisify(feed.get.bind(feed))(i)))
  const roots = await promisify(feed.rootHashes.bind(feed))(feed.length ? feed.length - 1 : 0).catch(() => [])
  let signature = null
  if (feed.length) signature = hex((await promisify(feed.signature.bind(feed))(feed.length - 1)).signature)
  return {
    length: feed.length,
    byteLength: feed.byteLength,
    blocks,
    roots: feed.length ? roots.map((n) => ({ index: n.index, hash: hex(n.hash), size: n.size })) : [],
    signature
  }
}

async function listing (drive, dirs) {
  const out = {}
  for (const d of dirs) {
    out[d] = await new Promise((resolve) => drive.readdir(d, (err, list) => resolve(err ? { error: err.message } : list)))
  }
  return out
}

async function stats (drive, names) {
  const out = {}
  for (const n of names) {
    out[n] = await new Promise((resolve) => drive.stat(n, (err, st) => {
      if (err) return resolve({ error: err.message })
      resolve({
        mode: st.mode, size: st.size, blocks: st.blocks, offset: st.offset,
        byteOffset: st.byteOffset, mtime: st.mtime.getTime(), ctime: st.ctime.getTime()
      })
    }))
  }
  return out
}

async function main () {
  const out = process.argv[2]
  if (!out) throw new Error('usage: generate-hyperdrive-vectors.js <testdata dir>')
  const seed = Buffer.alloc(32, 42)
  const kp = hcrypto.keyPair(seed)
  const files = {}
  const drive = hyperdrive((name) => (files[name] = ram()), kp.publicKey, { secretKey: kp.secretKey })
  await promisify(drive.ready.bind(drive))()

  const steps = []
  const dirs = ['/', '/a', '/a/b', '/d', '/z', '/z/deep', '/hello.txt', '/nope']
  const names = ['/', '/hello.txt', '/a', '/a/b', '/a/b/c.txt', '/a/b/d.txt', '/a/x.txt', '/empty', '/big.bin', '/d', '/d/e.txt', '/z/deep/deeper/f', '/z/g', '/z', '/nope']
  let metaSeen = drive.metadata.length
  let contentSeen = drive.content.length
  const initial = { metadata: await feedState(drive.metadata), content: await feedState(drive.content) }

  for (const step of STEPS) {
    const opts = step.time ? { mtime: step.time, ctime: step.time } : {}
    let error = null
    try {
      if (step.op === 'writeFile') await promisify(drive.writeFile.bind(drive))(step.path, dataOf(step.data), opts)
      else if (step.op === 'mkdir') await promisify(drive.mkdir.bind(drive))(step.path, opts)
      else if (step.op === 'unlink') await promisify(drive.unlink.bind(drive))(step.path)
      else if (step.op === 'rmdir') await promisify(drive.rmdir.bind(drive))(step.path)
    } catch (err) {
      error = err.message
    }
    const metadata = await feedState(drive.metadata)
    const content = await feedState(drive.content)
    steps.push({
      ...step,
      error,
      version: drive.version,
      metadata: { ...metadata, blocks: metadata.blocks.slice(metaSeen), from: metaSeen },
      content: { ...content, blocks: content.blocks.slice(contentSeen), from: contentSeen },
      contentSignatures: await signaturesOf(drive.content, contentSeen),
      readdir: await listing(drive, dirs),
      stat: await stats(drive, names)
    })
    metaSeen = metadata.length
    contentSeen = content.length
  }

  // Reading each version back: readdir of / at every version.
  const versions = []
  for (let v = 0; v <= drive.version; v++) {
    const co = drive.checkout(v)
    versions.push({ version: v, readdir: await listing(co, ['/', '/a', '/z']) })
  }
  const history = await new Promise((resolve, reject) => {
    const list = []
    drive.history().on('data', (n) => list.push({ version: n.version, type: n.type, name: n.name })).on('end', () => resolve(list)).on('error', reject)
  })

  const doc = {
    comment: 'Generated by conformance/js/generate-hyperdrive-vectors.js from ' + REFERENCE + '; do not edit.',
    reference: REFERENCE,
    seed: hex(seed),
    metadataKey: hex(kp.publicKey),
    contentKey: hex(drive.content.key),
    initial,
    steps,
    versions,
    history
  }
  fs.mkdirSync(path.join(out, 'hyperdrive'), { recursive: true })
  fs.writeFileSync(path.join(out, 'hyperdrive', 'archive.json'), JSON.stringify(doc, null, 1) + '\n')
}

// signaturesOf lists the content feed's non-empty signatures from index from.
async function signaturesOf (feed, from) {
  const out = {}
  for (let i = from; i < feed.length; i++) {
    const sig = await new Promise((resolve) => feed._storage.getSignature(i, (err, s) => resolve(err ? null : s)))
    if (sig && !sig.every((b) => b === 0)) out[i] = hex(sig)
  }
  return out
}

main().catch((err) => { console.error(err); process.exit(1) })
