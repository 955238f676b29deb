#!/usr/bin/env node
// Measures the reference hyperdrive (9.14.5 on hypercore 6.26.0, native
// crypto) on the same workload as BenchmarkArchiveOneDirectory in
// ../hyperdrive_bench_test.go: N writeFile calls of 100-byte files into one
// directory (one call per file), then readFile of each, then one readdir.
// Files on disk, no fsync. Prints one JSON object.
//
//   node drive.js [N]     (default 10000)
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const { promisify } = require('util')
const hyperdrive = require('hyperdrive')
const sodium = require('sodium-universal')

const n = Number(process.argv[2] || 10000)

function crypto () {
  let native = false
  try { native = sodium === require('sodium-native') } catch (_) {}
  return native ? 'sodium-native ' + require('sodium-native-real/package.json').version : 'sodium-javascript (pure JS)'
}

const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9

// checkKdf holds the shim's content-key derivation to sodium-javascript's.
function checkKdf () {
  const js = require('sodium-javascript')
  const key = Buffer.alloc(64, 3)
  const a = Buffer.alloc(32)
  const b = Buffer.alloc(32)
  sodium.crypto_kdf_derive_from_key(a, 1, Buffer.from('hyperdri'), key)
  js.crypto_kdf_derive_from_key(b, 1, Buffer.from('hyperdri'), key)
  if (!a.equals(b)) throw new Error('the sodium shim derives keys differently from sodium-javascript')
}

async function main () {
  checkKdf()
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hyperdrive-bench-'))
  try {
    const drive = hyperdrive(tmp)
    await promisify(drive.ready.bind(drive))()
    const writeFile = promisify(drive.writeFile.bind(drive))
    const readFile = promisify(drive.readFile.bind(drive))
    const readdir = promisify(drive.readdir.bind(drive))
    const body = Buffer.alloc(100, 7)
    const name = (i) => '/dir/file-' + i

    let start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await writeFile(name(i), body, { mtime: 1, ctime: 1 })
    const writeSeconds = seconds(start)

    start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) {
      const b = await readFile(name(i))
      if (b.length !== 100) throw new Error('short read')
    }
    const readSeconds = seconds(start)

    start = process.hrtime.bigint()
    const list = await readdir('/dir')
    const readdirSeconds = seconds(start)
    if (list.length !== n) throw new Error('readdir gave ' + list.length)

    process.stdout.write(JSON.stringify({
      reference: 'hyperdrive@' + require('hyperdrive/package.json').version,
      crypto: crypto(),
      node: process.version,
      files: n,
      writesPerSec: n / writeSeconds,
      readsPerSec: n / readSeconds,
      readdirMs: readdirSeconds * 1000
    }) + '\n')
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

main().catch((err) => { console.error(err); process.exit(1) })
