// Package snapshot holds the control plane's snapshot: the versioned,
// immutable set of facts (accounts, principals, credentials, reservations,
// IP policies and restrictions) that every edge decision rests on, its
// indexes, the deltas between two revisions, and the wire types of the edge
// API that carries them (the feed, session reports and session commands).
//
// Invariants: a *Snapshot is immutable once built by New; its indexes are
// built exactly once and readers never lock. This package does no network
// I/O and imports only the ids and codes leaves.
package snapshot
