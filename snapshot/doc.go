// Package snapshot holds the control plane's snapshot: the versioned,
// immutable set of facts (accounts, principals, credentials, reservations,
// IP policies and restrictions) that every edge decision rests on, its
// indexes, the deltas between two revisions, and the wire types of the edge
// API that carries them (the feed, session reports and session commands).
//
// Invariants: a *Snapshot is immutable once built by New or Apply; readers
// never lock. Apply derives the next snapshot from a delta in O(change): its
// indexes are copy-on-write maps that share untouched shards with the
// previous snapshot. Decoding of what the control plane sends (the feed, the
// persisted snapshot and delta log) ignores unknown fields, so that an older
// edge keeps following a newer control plane. This package does no network
// I/O and imports only the ids and codes leaves.
package snapshot
