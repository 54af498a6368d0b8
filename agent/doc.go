// Package agent is the Tollgate agent runtime: it keeps one agent session
// to an edge alive (TLS over TCP first and QUIC when TCP is slow to answer
// or fails, or the one transport configured; reconnecting with backoff),
// moves to the configured region's edge or, without one, to the fastest
// region's (regions.Fastest), binds each endpoint, joins every proxy stream
// the edge opens to the endpoint's upstream, and serves the local
// inspection API (GET /api/tunnels). Endpoints and settings arrive as
// package config's types, which hold their schema, defaults and validation.
//
// Invariants:
//   - New validates and has no side effects; Run does all I/O and owns every
//     goroutine it starts, all of which have ended when Run returns.
//   - A reconnect re-authenticates with the previous ClientId and Cookie and
//     re-binds every endpoint with its previous bind Id and Token, so public
//     URLs survive a dropped connection.
//   - Errors the edge marks as permanent (a refused authtoken, a refused
//     bind) are never retried: Run returns them as a *codes.Error.
//   - The authtoken is never logged and never appears in an error.
package agent
