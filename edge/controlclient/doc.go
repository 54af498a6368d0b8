// Package controlclient connects an edge to its control plane: Client is
// the HTTP client of the control plane's edge API (snapshot feed with
// deltas, session reports, command poll and results, the live edges of
// every region); Sync runs the three loops that keep an edge in step —
// follow the feed into the edge, report its sessions, run the operator's
// stop and restart commands. In `tollgated dev` Sync is given the control
// plane in-process instead of a Client.
//
// It depends on the edge only through small interfaces of its own
// (SnapshotSink, SessionLister, SessionCommander), which *edge.Edge
// implements; it does not import package edge.
//
// Invariants:
//   - The edge keeps serving from the snapshot it has while the control
//     plane is unreachable; every feed, report and poll failure is retried
//     with capped backoff (250ms doubling to 5s).
//   - A delta is applied only to the snapshot this client returned last;
//     otherwise a whole snapshot is asked for.
//   - Sessions are reported at once, on every change, and every
//     snapshot.EdgeReportInterval regardless.
//   - The edge secret is never logged.
package controlclient
