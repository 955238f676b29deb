// node find.js feed KEY [DHT-BOOTSTRAP]
//
// Finds a Dat feed by its key alone, the way dat-node joins the network
// (discovery-channel with hash: false; multicast DNS only, or with a
// bootstrap node HOST:PORT the mainline DHT only), connects to the first
// peer found over TCP, downloads the feed with hypercore 6 in full, and
// prints what it got as JSON: the feed's length and first block. (For an
// archive, the tests run dat clone itself.)
var discovery = require('discovery-channel')
var hypercore = require('hypercore')
var ram = require('random-access-memory')
var net = require('net')

var kind = process.argv[2]
var key = Buffer.from(process.argv[3], 'hex')
var bootstrap = process.argv[4]
var network = bootstrap
  ? { dht: { bootstrap: [bootstrap] }, dns: false, hash: false }
  : { dht: false, dns: { server: [], domain: 'dat.local' }, hash: false }

setTimeout(function () {
  console.error('nothing found and downloaded in 60 s')
  process.exit(1)
}, 60000).unref()

if (kind !== 'feed') fail(new Error('find.js finds a feed: ' + kind))
var target = hypercore(ram, key, { sparse: false })
target.ready(function () {
  var channel = discovery(network)
  var connected = false
  channel.on('peer', function (id, peer, type) {
    if (connected) return
    connected = true
    var socket = net.connect(peer.port, peer.host)
    var stream = target.replicate({ live: false })
    socket.pipe(stream).pipe(socket)
    socket.on('error', fail)
    stream.on('error', fail)
    stream.on('end', function () { done(peer, type) })
  })
  channel.join(target.discoveryKey)
})

function done (peer, type) {
  var found = { via: type, peer: peer.host + ':' + peer.port }
  target.get(0, function (err, block) {
    if (err) return fail(err)
    found.length = target.length
    found.first = JSON.parse(block.toString())
    print(found)
  })
}

function print (found) {
  console.log(JSON.stringify(found))
  process.exit(0)
}

function fail (err) {
  console.error(err)
  process.exit(1)
}
