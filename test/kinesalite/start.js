// Starts kinesalite (in memory) on 127.0.0.1 at an ephemeral port and
// prints the port on stdout; streams are ACTIVE at once. Used by
// controlplane/events/kinesis_test.go.
const kinesalite = require('kinesalite')
const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0 })
server.listen(0, '127.0.0.1', () => {
  console.log(server.address().port)
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
