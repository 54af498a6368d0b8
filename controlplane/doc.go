// Package controlplane serves Tollgate's control plane: the REST API
// (reference/platform-behaviour.md §1 shapes, TG_ codes), the snapshot feed
// that edges enforce from, the registry of online agent sessions that edges
// report, and the dev bootstrap. State lives in package store.
//
// Invariants:
//   - Every API mutation is one store unit of work: it bumps the revision and
//     writes an audit event attributed to the API key's owner, or changes
//     nothing (a refused request leaves the revision as it was).
//   - Secrets (API key and authtoken tokens) appear only in the response to
//     the request that created them; they are never stored or logged.
//   - API keys are checked on every request against the store (constant-time
//     hash compare), so deleting or deactivating takes effect at once.
//   - Snapshot(ctx, after) never returns a snapshot at or below after; it
//     sees writes by other processes sharing a PostgreSQL within one poll
//     interval.
//   - NewServer starts nothing; the Server has no goroutines of its own.
package controlplane
