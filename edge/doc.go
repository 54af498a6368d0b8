// Package edge is the data plane of one regional Tollgate edge: agent
// ingress (TLS+muxado on TCP and QUIC on UDP, one port), the route table
// from public names and TCP addresses to the sessions that serve them,
// binds and their validation, the public HTTPS listener (TLS with a
// minimum version per name, TLS passthrough and termination for tls
// endpoints, HTTP endpoints through internal/httpproxy), the listeners of
// TCP endpoints, the plain-HTTP redirect, and the per-connection and
// per-request gates (IP restrictions, endpoint IP policies, basic auth).
//
// The rooms around it are packages of their own: edge/sshserver serves
// `ssh -R` reverse tunnels and binds their endpoints through this package
// (NewEndpoint, Route, Attach); edge/controlclient follows the control
// plane's snapshot feed into ApplySnapshot, reports Sessions and runs the
// operator's StopSession/RestartSession; edge/certs supplies certificates.
//
// Inside, Edge holds the lifecycle, the agent sessions and the snapshot;
// binder validates binds (bind ACL, reservations, the TCP port range, bind
// tokens); publicServer serves public clients; ipGates decides by IP.
//
// Invariants:
//   - Every admission decision reads the snapshot held behind an atomic
//     pointer (no lock on the read path) and never calls the control plane.
//   - The snapshot is persisted in the data dir, so the edge serves from it
//     while the control plane is down; a snapshot from the feed replaces a
//     persisted one, never the other way round.
//   - A route maps one public name (or TCP address) to exactly one
//     endpoint, and an endpoint to the one session that serves it.
//   - IP policy is decided on the TCP peer address (PeerAddr), before a
//     byte goes to an agent.
//   - A new snapshot is enforced on every live session, the edge's own and
//     attached ones: a revoked credential closes its sessions, an endpoint
//     the snapshot no longer allows is stopped.
//   - New opens nothing; Listen binds; Serve runs; Shutdown drains.
package edge
