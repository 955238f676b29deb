#!/usr/bin/env node
// Reference hyperdrive peers and readers for the live archive tests.
//
//   node drive.js read-dat DIR SECRET_DIR
//     Opens the dat-layout folder DIR (as the dat command does: dat-storage,
//     latest mode, the secret key under SECRET_DIR) and prints
//     {"version": V, "files": {path: hex}, "dirs": [path]}.
//
//   node drive.js write-flat DIR SEED OPS_FILE
//     Writes an archive from SEED in node-dat-archive's flat layout
//     (DIR/metadata.*, DIR/content.*) by the operations in OPS_FILE and
//     prints the same report.
//
//   node drive.js serve SEED OPS_FILE
//     Writes an archive in memory, serves it on 127.0.0.1 (a free port),
//     prints {"port": N, "key": HEX}; each stdin line "write PATH HEX" writes
//     a file; the process ends when stdin closes.
//
//   node drive.js clone HOST PORT KEY METADATA_LENGTH
//     Clones the archive KEY from HOST:PORT into memory, waits until its
//     metadata feed has METADATA_LENGTH blocks, reads every file (each block
//     verified) and prints the report.
//
// OPS_FILE is JSON: [{"op": "writeFile"|"mkdir"|"unlink", "path", "data": hex,
// "time": ms}].
'use strict'

const fs = require('fs')
const net = require('net')
const path = require('path')
const readline = require('readline')
const { promisify } = require('util')
const hyperdrive = require('hyperdrive')
const datStorage = require('dat-storage')
const raf = require('random-access-file')
const ram = require('random-access-memory')
const hcrypto = require('hypercore-crypto')

function call (drive, method, ...args) {
  return promisify(drive[method].bind(drive))(...args)
}

async function report (drive) {
  const files = {}
  const dirs = []
  async function walk (dir) {
    for (const name of await call(drive, 'readdir', dir)) {
      const p = path.posix.join(dir, name)
      const st = await call(drive, 'stat', p)
      if (st.isDirectory()) {
        dirs.push(p)
        await walk(p)
      } else {
        files[p] = (await call(drive, 'readFile', p)).toString('hex')
      }
    }
  }
  await walk('/')
  return { version: drive.version, files, dirs }
}

async function applyOps (drive, opsFile) {
  for (const s of JSON.parse(fs.readFileSync(opsFile, 'utf8'))) {
    const opts = { mtime: s.time, ctime: s.time }
    if (s.op === 'writeFile') await call(drive, 'writeFile', s.path, Buffer.from(s.data || '', 'hex'), opts)
    else if (s.op === 'mkdir') await call(drive, 'mkdir', s.path, opts)
    else if (s.op === 'unlink') await call(drive, 'unlink', s.path)
    else throw new Error('unknown op ' + s.op)
  }
}

function print (obj) {
  // Exit only once stdout is flushed: a pipe takes large writes in pieces.
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(0))
}

function seeded (seed) {
  return hcrypto.keyPair(Buffer.from(seed, 'hex'))
}

const commands = {
  async 'read-dat' ([dir, secretDir]) {
    const drive = hyperdrive(datStorage(dir, { secretDir }), { latest: true })
    await call(drive, 'ready')
    print(await report(drive))
  },

  async 'write-flat' ([dir, seed, opsFile]) {
    const kp = seeded(seed)
    const storage = (name) => raf(path.join(dir, name.replace(/\//g, '.')))
    const drive = hyperdrive(storage, kp.publicKey, { secretKey: kp.secretKey })
    await call(drive, 'ready')
    await applyOps(drive, opsFile)
    const out = await report(drive)
    await call(drive, 'close')
    print(out)
  },

  async serve ([seed, opsFile]) {
    const kp = seeded(seed)
    const drive = hyperdrive(ram, kp.publicKey, { secretKey: kp.secretKey })
    await call(drive, 'ready')
    await applyOps(drive, opsFile)
    const server = net.createServer((socket) => {
      const stream = drive.replicate({ live: true })
      socket.pipe(stream).pipe(socket)
      socket.on('error', () => {})
      stream.on('error', () => socket.destroy())
    })
    server.listen(0, '127.0.0.1', () => {
      process.stdout.write(JSON.stringify({ port: server.address().port, key: drive.key.toString('hex') }) + '\n')
    })
    const lines = readline.createInterface({ input: process.stdin })
    lines.on('line', (line) => {
      const [cmd, p, data] = line.trim().split(' ')
      if (cmd === 'write') drive.writeFile(p, Buffer.from(data || '', 'hex'), { mtime: 1, ctime: 1 }, () => process.stdout.write('written\n'))
    })
    lines.on('close', () => process.exit(0))
  },

  async clone ([host, port, key, metadataLength]) {
    const drive = hyperdrive(ram, Buffer.from(key, 'hex'))
    await call(drive, 'ready')
    const socket = net.connect(Number(port), host)
    const stream = drive.replicate({ live: true })
    socket.pipe(stream).pipe(socket)
    stream.on('error', (err) => console.error('stream:', err.message))
    while (drive.metadata.length < Number(metadataLength)) {
      await promisify(drive.metadata.update.bind(drive.metadata))()
    }
    const out = await report(drive)
    socket.destroy()
    print(out)
  }
}

const [cmd, ...args] = process.argv.slice(2)
if (!commands[cmd]) {
  console.error('usage: drive.js read-dat|write-flat|serve|clone ...')
  process.exit(2)
}
commands[cmd](args).catch((err) => { console.error(err); process.exit(1) })
