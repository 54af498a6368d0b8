// Connects the hosted platform's Node agent SDK (@ngrok/ngrok, whose core
// is the Rust `ngrok` crate) to a Tollgate edge and forwards an endpoint to
// an upstream; ../nodesdk_test.go restarts the edge under it. It prints
// "URL <url>" once the endpoint is online, then a line for each
// disconnection the SDK reports, and runs until killed.
//
// Environment: TOLLGATE_AUTHTOKEN, TOLLGATE_SERVER_ADDR (host:port of the
// agent listener), TOLLGATE_ROOT_CA (PEM file), TOLLGATE_UPSTREAM
// (host:port), TOLLGATE_DOMAIN (optional).
"use strict";
const ngrok = require("@ngrok/ngrok");

async function main() {
  const env = process.env;
  const listener = await ngrok.forward({
    addr: env.TOLLGATE_UPSTREAM,
    authtoken: env.TOLLGATE_AUTHTOKEN,
    server_addr: env.TOLLGATE_SERVER_ADDR,
    root_cas: env.TOLLGATE_ROOT_CA,
    domain: env.TOLLGATE_DOMAIN || undefined,
    onStatusChange: (status) => console.log(`STATUS ${Date.now()} ${status}`),
  });
  console.log(`URL ${listener.url()}`);
  setInterval(() => {}, 1 << 30); // keep running until killed
}

main().catch((err) => {
  console.error(`FAILED ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
