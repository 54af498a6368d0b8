// Package controlplane is the plumbing that the control plane's three
// products share: the REST API (controlplane/restapi), the dashboard
// (controlplane/dashboard) and the edge API (controlplane/edgeapi). State
// lives in package store. A Core, over one store, holds:
//
//   - the request pipeline of the API listener (Serve): the operation ID,
//     the version header, caller authentication by API key (auth.go), the
//     rate limit per account and the failure budgets per client address
//     (ratelimit.go, addrlimit.go), the
//     account's `api` IP restriction (iprestrict.go, which also decides the
//     dashboard's), and the error body (errorbody.go, errors.go);
//   - the RBAC rules: Caller's checks and the access checks (rbac.go, where
//     the rules are written out), and the operations that the API and the
//     dashboard both perform (Invite, RunSessionCommand);
//   - the snapshot feed (feed.go) that edges enforce from and IP
//     restrictions are decided on;
//   - the Registry of live edges, the agent sessions they report, their
//     command targets and the command queues of edges in other processes,
//     kept in the store
//     (registry.go, sessions.go, commandqueue.go);
//   - the dev bootstrap (bootstrap.go).
//
// The products import this package, never each other; cmd/tollgated wires
// a Core and the three products, and serves the REST API and the edge API
// on one listener (edgeapi.Mount), the dashboard on its own.
//
// Invariants:
//   - API keys are checked on every request against the store
//     (constant-time hash compare), so deleting or deactivating takes
//     effect at once. A client address is the TCP peer address; only from
//     a peer in Config.TrustedProxies does X-Forwarded-For count
//     (clientip.go).
//   - A valid credential is never refused for its address's failures: the
//     failure budgets per address (addrlimit.go) are charged and enforced
//     only on attempts that failed, and the edge secret has its own.
//   - A refusal is an *Error: the caller sees its status, code and message;
//     its cause goes only to the log.
//   - Snapshot(ctx, after) returns a snapshot newer than after, or, when the
//     store's revision is below after (a store reset or restored), the
//     current one at once. It sees writes by other processes sharing a
//     PostgreSQL within one poll interval.
//   - What edges in other processes report (sessions, endpoints, liveness)
//     and the commands queued for them live in the store, not the
//     snapshot: every control-plane process sharing a database answers the
//     same, and a command is delivered once by whichever process the edge
//     polls. Only an in-process edge (`tollgated dev`) is kept in memory.
//   - New starts nothing; a Core's only goroutines are those of its
//     failure-limit caches, started on the first failed authentication and
//     stopped by Close.
package controlplane
