package edge

import (
	"context"
	"errors"
	"fmt"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
	"github.com/tollgate/tollgate/tunnel"
)

// OpenStream implements httpproxy.Endpoint: it opens a proxy stream to the
// endpoint's agent for one public client connection, with the client's
// address in the proxy header. For a member of a pool that cannot take it
// (openProxy) the error wraps httpproxy.ErrEndpointDown, and the proxy
// resolves the host again.
func (ep *Endpoint) OpenStream(ctx context.Context) (httpproxy.Stream, error) {
	hdr := &tunnel.ProxyHeader{ID: ep.bindID, Proto: ep.proto, EdgeType: edgeTypeHTTPS}
	if ap, ok := httpproxy.ClientAddrFromContext(ctx); ok {
		hdr.ClientAddr = ap.String()
	}
	st, err := ep.openProxy(ctx, hdr)
	if err != nil {
		if errors.Is(err, errMemberDown) {
			err = fmt.Errorf("%w: %w", httpproxy.ErrEndpointDown, err)
		}
		return nil, codes.NewError(codes.AgentUnreachable, "The agent of %s is unreachable.", ep.url).WithCause(err)
	}
	return st, nil
}

// openProxy opens a proxy stream to ep's owner. A member of a pool first
// shows its agent alive (poolhealth.go), so that nothing of the client's
// goes to an agent that died silently; its failures, and any failure to
// open, wrap errMemberDown: another member may take the work.
func (ep *Endpoint) openProxy(ctx context.Context, hdr *tunnel.ProxyHeader) (Stream, error) {
	if !ep.pooled.Load() {
		return ep.session.OpenProxy(ctx, hdr)
	}
	if h, ok := ep.session.(memberHealth); ok {
		if err := h.confirmAlive(ctx); err != nil {
			if errors.Is(err, errMemberDown) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", errMemberDown, err)
		}
	}
	st, err := ep.session.OpenProxy(ctx, hdr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMemberDown, err)
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
