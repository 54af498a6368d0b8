// Package sshserver is an edge's SSH reverse-tunnel ingress: `ssh -R
// 443:localhost:8080 -p 2222 HOST http` makes one agent session with one
// endpoint per SSH connection (http, tcp or tls, with the options its
// usage text lists), authenticated by the client's public key against the
// snapshot's SSH credentials.
//
// It talks to the edge only through Edge, a narrow interface that
// *edge.Edge implements: validate, route and unbind an endpoint, attach a
// session (so the edge reports it, the API's stop reaches it and every new
// snapshot re-checks it), check the agent IP restriction.
//
// Invariants:
//   - A session's permissions come from the key that signed, not one merely
//     offered: the credential is looked up again (authn.VerifySSHKey) from
//     the permissions x/crypto/ssh keeps for the verified key.
//   - Only modern algorithms are offered: no SHA-1 MACs, key exchanges or
//     RSA signatures; public-key authentication only.
//   - A refused key sees only "Permission denied"; the cause is logged. An
//     agent IP restriction refusal (TG_115) is shown as a banner.
//   - A revoked key, a narrowed bind ACL, an API stop or shutdown closes the
//     session with a message on the client's stderr and exit status 1.
//   - New opens nothing and starts nothing; the host key is loaded by
//     LoadHostKey and the listener opened by Listen, both by the caller.
package sshserver
