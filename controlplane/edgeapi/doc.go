// Package edgeapi serves the control plane's API for edges that run as
// their own processes (`tollgated edge --control URL`), under PathPrefix on
// the API listener, which it shares with the REST API (Mount):
//
//	GET /edge/v1/snapshot?after=REV[&wait=SECONDS]
//	    → 200 snapshot.FeedMessage: a delta from REV when this process still
//	      holds the snapshot at REV, else a whole snapshot; 204 when nothing
//	      newer than REV appeared within wait (default 25 s, at most 60 s).
//	      after=0, or an after beyond the store's revision (a store that was
//	      reset), gets a whole snapshot at once.
//	PUT /edge/v1/sessions   body snapshot.EdgeReport
//	    → 200 snapshot.EdgeReportAnswer: every live edge, so that edges can
//	      tell agents where each region is (ConnectAddresses)
//	GET /edge/v1/commands?edge_id=ID&known=VERSION[&wait=SECONDS]
//	    → 200 snapshot.EdgeCommands: operator commands for the edge's agent
//	      sessions, and the live edges when they changed since VERSION;
//	      answered at once when there is either, else after wait (at most
//	      60 s). Polling makes the edge the command target of the sessions
//	      it reports.
//	POST /edge/v1/commands/results   body snapshot.EdgeCommandResult → 204
//	GET|PUT|DELETE /edge/v1/certstore/value?key=K, GET .../stat?key=K,
//	GET .../list?prefix=P&recursive=BOOL, POST .../locks/{acquire,renew,release},
//	PUT /edge/v1/certificates/status
//	    → certmagic's storage and lock leases over the store's certificate
//	      storage, and certificate status reports (certstorage.go;
//	      docs/tls.md#edges-share-certificates-through-the-control-plane).
//	      Keys outside certmagic's syntax are refused with TG_5100, values
//	      over snapshot.MaxCertValue with TG_5102; an edge's lock expires
//	      Config.CertLockTTL after its last renewal.
//
// The snapshot feed, the registry of edges and sessions and the command
// queues are the controlplane package's (feed.go, registry.go,
// commandqueue.go); this package is their HTTP face. GET /regions, which
// lists the live edges to API callers, is the REST API's.
//
// Invariants:
//   - Every request authenticates with "Authorization: Bearer <edge
//     secret>", the secret given as Config.Secret (compared as SHA-256
//     hashes in constant time). Without an edge secret the edge API answers
//     403: only the in-process edge of `tollgated dev` exists.
//   - Errors are the API's error body, with the EdgeAuth, EdgeBadRequest
//     and EdgeUnavailable codes.
//   - New starts nothing; the Server has no goroutines of its own.
package edgeapi
