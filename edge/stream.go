package edge

import (
	"context"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
	"github.com/tollgate/tollgate/tunnel"
)

// OpenStream implements httpproxy.Endpoint: it opens a proxy stream to the
// endpoint's agent for one public client connection, with the client's
// address in the proxy header.
func (ep *Endpoint) OpenStream(ctx context.Context) (httpproxy.Stream, error) {
	hdr := &tunnel.ProxyHeader{ID: ep.bindID, Proto: ep.proto, EdgeType: edgeTypeHTTPS}
	if ap, ok := httpproxy.ClientAddrFromContext(ctx); ok {
		hdr.ClientAddr = ap.String()
	}
	st, err := ep.session.OpenProxy(ctx, hdr)
	if err != nil {
		return nil, codes.NewError(codes.AgentUnreachable, "The agent of %s is unreachable.", ep.url).WithCause(err)
	}
	return st, nil
}

// ID implements httpproxy.Endpoint.
func (ep *Endpoint) ID() string { return ep.id }

// OpenProxy implements EndpointOwner: a proxy stream over the agent's
// tunnel session.
func (s *agentSession) OpenProxy(ctx context.Context, hdr *tunnel.ProxyHeader) (httpproxy.Stream, error) {
	return s.ts.OpenProxy(ctx, hdr)
}

// Edge types in proxy headers, as the agent SDKs number them
// (docs/agent-protocol.md).
const (
	edgeTypeTCP   = "1"
	edgeTypeTLS   = "2"
	edgeTypeHTTPS = "3"
)
