// node dns-server.js PORT
//
// A DNS discovery server (dns-discovery 6, as the Dat tools' discovery1 and
// discovery2.datprotocol.com run it) for the domain dat.local, without
// multicast, on UDP PORT. Prints {"ready": true} once it listens, and
// serves until it is killed.
var discovery = require('dns-discovery')

var server = discovery({ domain: 'dat.local', multicast: false })
server.on('error', function (err) {
  console.error(err)
  process.exit(1)
})
server.listen(Number(process.argv[2]), function () {
  console.log(JSON.stringify({ ready: true }))
})
