// Serves one backend with the original NodeVMS (libvms 2.0.2), installed
// in the folder given, so that bench/load can drive it as it drives the
// nodevms binary: bench/compare-serving's ORIGINAL=PATH.
//
//   node bench/js/original-server.js ORIGINAL_DIR counter|persistent-counter DATA_DIR
//
// It prints "Serving at ws://127.0.0.1:PORT/vm" once it listens, and stops
// on SIGINT or SIGTERM. The original never fsyncs. The persistent
// counter is the same workload as examples/persistent-counter.js in the
// original's files API (as the original's own benchmark writes it): read
// /counter, add one, write it back.
'use strict'
const path = require('path')
const net = require('net')

const scripts = {
  counter: 'var i = 0\nexports.increment = function () { i++; return i }\n',
  'persistent-counter': `exports.increment = async function () {
  var i = 0
  try { i = JSON.parse(await System.files.readFile('/counter')) } catch (e) {}
  i++
  await System.files.writeFile('/counter', JSON.stringify(i))
  return i
}
`
}

async function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

async function main () {
  const [dir, name, dataDir] = process.argv.slice(2)
  if (!dir || !scripts[name] || !dataDir) {
    console.error('usage: original-server.js ORIGINAL_DIR counter|persistent-counter DATA_DIR')
    process.exit(2)
  }
  // Node 20 ends the process on an unhandled rejection; Node 8, which the
  // original was written for, only warned.
  process.on('unhandledRejection', () => {})
  const { VM, RPCServer } = require(path.join(path.resolve(dir), 'node_modules', 'libvms'))
  const vm = new VM(scripts[name])
  await vm.deploy({ dir: dataDir, title: name })
  const rpc = new RPCServer()
  rpc.mount('/vm', vm)
  const port = await freePort()
  await rpc.listen(port, '127.0.0.1')
  console.log(`Serving at ws://127.0.0.1:${port}/vm`)
  const stop = async () => {
    rpc.close()
    await vm.close()
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

main().catch((e) => { console.error(e); process.exit(1) })
