// Package edge is Tollgate's regional edge: agent ingress (TLS+muxado and
// QUIC), the route table from public names to agent sessions, the public
// HTTPS/HTTP listeners, and enforcement from a cached control-plane snapshot.
//
// Invariants: every admission decision reads the snapshot held behind an
// atomic pointer (no lock on the read path) and never calls the control
// plane; the snapshot is persisted so the edge can start while the control
// plane is down; a route maps one public name to exactly one endpoint.
package edge
