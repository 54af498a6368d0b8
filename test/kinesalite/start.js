// Starts kinesalite (in memory) on 127.0.0.1 at an ephemeral port and
// prints the port on stdout; streams are ACTIVE at once. With
// KINESALITE_CERT and KINESALITE_KEY (PEM files) it serves HTTPS with that
// certificate. It exits when its stdin closes. Used by
// controlplane/events/kinesis_test.go and test/events_aws_test.go.
const fs = require('fs')
const kinesalite = require('kinesalite')
const opts = { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0 }
if (process.env.KINESALITE_CERT) {
  opts.ssl = true
  opts.cert = fs.readFileSync(process.env.KINESALITE_CERT)
  opts.key = fs.readFileSync(process.env.KINESALITE_KEY)
  opts.ca = opts.cert
}
const server = kinesalite(opts)
server.listen(0, '127.0.0.1', () => {
  console.log(server.address().port)
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
