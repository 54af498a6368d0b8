package edge

import (
	"context"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
	"github.com/tollgate/tollgate/tunnel"
)

// endpointOwner is the session that serves an endpoint: an agent session
// (tunnel protocol) or an SSH session (`ssh -R`).
type endpointOwner interface {
	// identity returns the identity that authenticated, or nil before.
	identity() *authn.Identity
	// openProxy opens a raw stream to the owner for one public client
	// connection described by hdr; ctx bounds the opening only.
	openProxy(ctx context.Context, hdr *tunnel.ProxyHeader) (httpproxy.Stream, error)
	// dropEndpoint removes ep from the owner (taken over or revoked) and
	// tells the client why.
	dropEndpoint(ep *endpoint, code codes.Code, msg string)
}

var (
	_ endpointOwner = (*agentSession)(nil)
	_ endpointOwner = (*sshSession)(nil)
)
