// node rehost.js CALL-LOG-KEY
//
// A JavaScript peer that rehosts a NodeVMS backend's feeds, as a Dat user
// would: finds the call log by its key over multicast DNS
// (discovery-channel, as dat-node joins), downloads it with hypercore 6,
// reads the files archive's key from its init entry and downloads the
// archive with hyperdrive 9 the same way, then serves each on a TCP port of
// its own and announces both. Prints {"ready": true, ...} once it serves,
// and serves until it is killed.
var discovery = require('discovery-channel')
var hypercore = require('hypercore')
var hyperdrive = require('hyperdrive')
var ram = require('random-access-memory')
var net = require('net')

var logKey = Buffer.from(process.argv[2], 'hex')
var channel = discovery({ dht: false, dns: { server: [], domain: 'dat.local' }, hash: false })

var timeout = setTimeout(function () {
  console.error('could not download the feeds in 60 s')
  process.exit(1)
}, 60000)

function download (target, cb) {
  var connected = false
  channel.on('peer', function onpeer (id, peer) {
    if (connected || !id.equals(target.discoveryKey)) return
    connected = true
    channel.removeListener('peer', onpeer)
    var socket = net.connect(peer.port, peer.host)
    var stream = target.replicate({ live: false })
    socket.pipe(stream).pipe(socket)
    socket.on('error', fail)
    stream.on('error', fail)
    stream.on('end', function () {
      channel.leave(target.discoveryKey)
      cb()
    })
  })
  channel.join(target.discoveryKey)
}

function serve (target, cb) {
  var server = net.createServer(function (socket) {
    var stream = target.replicate({ live: true })
    socket.pipe(stream).pipe(socket)
    socket.on('error', function () {})
    stream.on('error', function () {})
  })
  server.listen(0, function () {
    channel.join(target.discoveryKey, server.address().port)
    cb(server.address().port)
  })
}

var log = hypercore(ram, logKey, { sparse: false })
log.ready(function () {
  download(log, function () {
    log.get(0, function (err, block) {
      if (err) return fail(err)
      var init = JSON.parse(block.toString())
      var archive = hyperdrive(ram, Buffer.from(init.filesArchiveUrl.slice('dat://'.length), 'hex'), { sparse: false })
      archive.ready(function () {
        download(archive, function () {
          serve(log, function (logPort) {
            serve(archive, function (archivePort) {
              clearTimeout(timeout)
              console.log(JSON.stringify({ ready: true, logLength: log.length, version: archive.version, logPort: logPort, archivePort: archivePort }))
            })
          })
        })
      })
    })
  })
})

function fail (err) {
  console.error(err)
  process.exit(1)
}
