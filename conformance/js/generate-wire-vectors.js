#!/usr/bin/env node
// Writes the wire-protocol vectors under <out>/wire/ from the pinned
// hypercore-protocol and bitfield-rle: message bodies, frames, run-length
// encoded bitfields, and XSalsa20 keystreams as crypto_stream_xor_instance
// produces them chunk by chunk.
//
//   npm ci && node generate-wire-vectors.js ../testdata
'use strict'

const fs = require('fs')
const path = require('path')
const varint = require('varint')
const messages = require('hypercore-protocol/messages')
const rle = require('bitfield-rle')
const sodium = require('sodium-universal')

const REFERENCE = 'hypercore-protocol@' + require('hypercore-protocol/package.json').version
const hex = (b) => Buffer.from(b).toString('hex')
const bytes = (n, seed) => Buffer.from(Array.from({ length: n }, (_, i) => (seed + 13 * i) & 255))

// Each message: its type, its fields as the reference takes them (Buffers
// as {hex}), and the body the reference encodes.
const TYPES = ['Feed', 'Handshake', 'Info', 'Have', 'Unhave', 'Want', 'Unwant', 'Request', 'Cancel', 'Data']
const MESSAGES = [
  ['Feed', { discoveryKey: bytes(32, 1) }],
  ['Feed', { discoveryKey: bytes(32, 2), nonce: bytes(24, 3) }],
  ['Handshake', { id: bytes(32, 4), live: true, userData: null, extensions: [], ack: false }],
  ['Handshake', { id: bytes(32, 5), live: false, userData: Buffer.from('hi'), extensions: ['a', 'session-data'], ack: true }],
  ['Handshake', {}],
  ['Info', { uploading: true, downloading: false }],
  ['Info', { downloading: true }],
  ['Have', { start: 0 }],
  ['Have', { start: 5, length: 1 }],
  ['Have', { start: 0, length: 8192, bitfield: rle.encode(Buffer.from([255, 255, 255, 7, 0, 0])) }],
  ['Have', { start: 1 << 30, length: 3, ack: true }],
  ['Have', { start: 0, bitfield: Buffer.alloc(0) }],
  ['Unhave', { start: 9 }],
  ['Unhave', { start: 9, length: 2 }],
  ['Want', { start: 0, length: 1048576 }],
  ['Want', { start: 0 }],
  ['Unwant', { start: 8192, length: 8192 }],
  ['Request', { index: 0 }],
  ['Request', { index: 42, hash: false, nodes: 5 }],
  ['Request', { index: 7, bytes: 100, hash: true, nodes: 0 }],
  ['Cancel', { index: 3 }],
  ['Cancel', { index: 3, bytes: 0, hash: false }],
  ['Data', { index: 0, value: Buffer.from('hello'), nodes: [], signature: null }],
  ['Data', { index: 12, value: Buffer.alloc(0), nodes: [{ index: 24, hash: bytes(32, 6), size: 0 }, { index: 19, hash: bytes(32, 7), size: 1 << 40 }], signature: bytes(64, 8) }],
  ['Data', { index: 1 }]
]

function jsonFields (fields) {
  const out = {}
  for (const [k, v] of Object.entries(fields)) {
    if (Buffer.isBuffer(v)) out[k] = { hex: hex(v) }
    else if (Array.isArray(v) && k === 'nodes') out[k] = v.map((n) => ({ index: n.index, hash: { hex: hex(n.hash) }, size: n.size }))
    else out[k] = v
  }
  return out
}

function frame (channel, type, body) {
  const header = varint.encode(channel << 4 | type)
  return Buffer.concat([Buffer.from(varint.encode(header.length + body.length)), Buffer.from(header), body])
}

const BITFIELDS = [
  [],
  [0, 0, 0],
  [255],
  [1, 2, 3],
  new Array(100).fill(255),
  [...new Array(40).fill(255), 7, ...new Array(3000).fill(0), 1],
  [...new Array(3).fill(255), 9, 9, ...new Array(3).fill(0), 255, 255],
  Array.from({ length: 300 }, (_, i) => (i % 7 === 0 ? 0 : i % 5 === 0 ? 255 : i & 255)),
  [...new Array(200).fill(0), ...new Array(200).fill(255), ...new Array(200).fill(0), 3]
]

function keystream (key, nonce, chunks) {
  const xor = sodium.crypto_stream_xor_instance(nonce, key)
  const out = []
  let i = 0
  for (const n of chunks) {
    const buf = bytes(n, i++)
    xor.update(buf, buf)
    out.push(hex(buf))
  }
  xor.final()
  return out
}

// The capture: the bytes the reference server sends in a scripted download
// (see capture.js), made in separate processes as the Go test runs it.
function capture (outDir) {
  const { spawn, execFileSync } = require('child_process')
  const os = require('os')
  const seed = Buffer.alloc(32, 0x31).toString('hex')
  const batches = [
    ['first', '', 'third'].map((s) => Buffer.from(s).toString('hex')),
    Array.from({ length: 40 }, (_, i) => Buffer.alloc(i + 1, i).toString('hex'))
  ]
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'capture-')), 'batches.json')
  fs.writeFileSync(file, JSON.stringify(batches))
  const server = spawn(process.execPath, [path.join(__dirname, 'capture.js'), 'serve', seed, file], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    server.stdout.once('data', (line) => {
      try {
        const { port } = JSON.parse(line)
        const key = require('hypercore-crypto').keyPair(Buffer.from(seed, 'hex')).publicKey.toString('hex')
        const out = JSON.parse(execFileSync(process.execPath, [path.join(__dirname, 'capture.js'), 'client', String(port), key]))
        server.kill()
        resolve({ reference: 'hypercore@' + require('hypercore/package.json').version, seed, batches, serverNonce: Buffer.alloc(24, 0x2a).toString('hex'), serverId: Buffer.alloc(32, 0x5a).toString('hex'), key, server: out.server })
      } catch (err) {
        server.kill()
        reject(err)
      }
    })
  })
}

async function main () {
  const outDir = path.resolve(process.argv[2] || path.join(__dirname, '..', 'testdata'), 'wire')
  fs.mkdirSync(outDir, { recursive: true })

  const vectors = {
    reference: REFERENCE,
    messages: MESSAGES.map(([type, fields]) => {
      const body = messages[type].encode(fields)
      return { type: TYPES.indexOf(type), name: type, fields: jsonFields(fields), body: hex(body) }
    }),
    frames: MESSAGES.slice(0, 6).map(([type, fields], i) => {
      const channel = [0, 1, 15, 16, 255, 0][i]
      return { channel, type: TYPES.indexOf(type), body: hex(messages[type].encode(fields)), frame: hex(frame(channel, TYPES.indexOf(type), messages[type].encode(fields))) }
    }),
    rle: BITFIELDS.map((b) => ({ bitfield: hex(Buffer.from(b)), encoded: hex(rle.encode(Buffer.from(b))) })),
    keystreams: [
      { key: hex(bytes(32, 9)), nonce: hex(bytes(24, 10)), chunks: [1, 2, 61, 64, 65, 128, 1000, 3] },
      { key: hex(bytes(32, 11)), nonce: hex(bytes(24, 12)), chunks: [4096, 1] }
    ]
  }
  for (const k of vectors.keystreams) k.output = keystream(Buffer.from(k.key, 'hex'), Buffer.from(k.nonce, 'hex'), k.chunks)

  const file = path.join(outDir, 'vectors.json')
  fs.writeFileSync(file, JSON.stringify(vectors, null, 1) + '\n')
  console.log('wrote', path.relative(process.cwd(), file))

  const captureFile = path.join(outDir, 'capture.json')
  fs.writeFileSync(captureFile, JSON.stringify(await capture(outDir), null, 1) + '\n')
  console.log('wrote', path.relative(process.cwd(), captureFile))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
