// node dht-node.js PORT
//
// A mainline DHT node (bittorrent-dht, as discovery-channel runs it) that
// bootstraps from no one, listening on PORT: the network's bootstrap node.
// Prints {"ready": true} once it listens, and runs until it is killed.
var DHT = require('bittorrent-dht')

var node = new DHT({ bootstrap: false })
node.on('error', function (err) {
  console.error(err)
  process.exit(1)
})
node.listen(Number(process.argv[2]), function () {
  console.log(JSON.stringify({ ready: true, port: node.address().port }))
})
