// Package config holds Tollgate's shared vocabulary: prefixed IDs, the stable
// user-facing error codes, and the control-plane snapshot that every edge
// enforces from.
//
// Invariants: a *Snapshot is immutable once built by NewSnapshot; its indexes
// are built exactly once and readers never lock. This package does no network
// I/O and imports nothing else of Tollgate's.
package config
