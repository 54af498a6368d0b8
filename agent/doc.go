// Package agent is the Tollgate agent runtime: it keeps agent sessions to
// Config.HAConnections distinct edges of its region alive (its legs; TLS
// over TCP first and QUIC when TCP is slow to answer or fails, or the one
// transport configured; reconnecting with backoff, to another edge when
// the region has one), moves to the configured region's edge or, without
// one, to the fastest region's (regions.Fastest), binds each endpoint on
// each leg, joins every proxy stream the edges open to the endpoint's
// upstream, and serves its web address: the local API (GET /api/tunnels,
// /api/status) and the request inspector, which records each HTTP
// exchange as join copies it (httptap.go) into a bounded ring
// (capture.go) shown at /inspect and /api/requests/http, with replay
// (docs/inspect.md). Endpoints and settings arrive as package config's
// types, which hold their schema, defaults and validation.
//
// Invariants:
//   - New validates and has no side effects; Run does all I/O and owns every
//     goroutine it starts, all of which have ended when Run returns.
//   - A reconnect re-authenticates with the previous ClientId and Cookie and
//     re-binds every endpoint with its previous bind Id and Token, so public
//     URLs survive a dropped connection.
//   - Two legs never hold one edge (the edge's EdgeID tells them apart);
//     every leg binds every endpoint under the same bind Id and URL, and a
//     proxy stream on any leg reaches the same upstream.
//   - Errors the edge marks as permanent (a refused authtoken, a refused
//     bind) and an edge certificate the agent cannot verify (TG_9006) are
//     never retried: Run returns them as a *codes.Error.
//   - Recording never changes, delays beyond its own work, or blocks the
//     bytes it sees; the tap sees each chunk before it is forwarded.
//   - The authtoken is never logged and never appears in an error.
package agent
