package edge

import (
	"context"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// Stream is a raw stream to the agent (or SSH client) that serves an
// endpoint, for one public client connection.
type Stream = httpproxy.Stream

// EndpointOwner is the session that serves an endpoint: an agent session
// (tunnel protocol) of this package, or a session of another ingress (the
// SSH server's `ssh -R` sessions). Its methods are safe for concurrent use.
type EndpointOwner interface {
	// Identity returns the identity that authenticated, or nil before.
	Identity() *authn.Identity
	// OpenProxy opens a raw stream to the owner for one public client
	// connection described by hdr; ctx bounds the opening only.
	OpenProxy(ctx context.Context, hdr *tunnel.ProxyHeader) (Stream, error)
	// DropEndpoint removes ep from the owner (taken over or revoked) and
	// tells the client why.
	DropEndpoint(ep *Endpoint, code codes.Code, msg string)
}

var _ EndpointOwner = (*agentSession)(nil)

// Session is an agent session that an ingress outside this package serves
// (the SSH server's sessions), attached to the edge with Attach so that the
// edge treats it as one of its own: it is in the edge's session list (the
// control plane's reports), the API's stop and restart commands reach it,
// and every new snapshot re-checks it. Its methods are safe for concurrent
// use.
type Session interface {
	// ID returns the session's ID (ts_...).
	ID() string
	// Info returns the session as the control plane's API reports it;
	// false once it has ended.
	Info() (snapshot.AgentSession, bool)
	// Recheck re-checks the session against a new snapshot, and closes it
	// (telling its client why) when the snapshot no longer admits its
	// credential or its endpoint.
	Recheck(snap *snapshot.Snapshot)
	// Stop ends the session at an operator's request. It returns nil once
	// the session is ending, or a *codes.Error.
	Stop(ctx context.Context) error
	// Restart asks the session's client to reconnect; a *codes.Error with
	// codes.SessionCommandUnsupported when it cannot.
	Restart(ctx context.Context) error
}
