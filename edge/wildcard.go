package edge

import (
	"crypto/tls"
	"net"
	"strings"
)

// Wildcard endpoints (docs/wildcard-endpoints.md). An endpoint bound at
// "*.example.com" serves every name exactly one label under example.com
// that has no endpoint of its own anywhere in the region: the most specific
// route wins, across the region's edges too. This file holds the decision
// the HTTPS listener makes once per connection, from the ClientHello's
// server name; the router (router.go) makes the same one per request.

// wildcardKey returns the wildcard route key that covers name, "*.<parent>"
// for "<label>.<parent>", or "" when name has a single label or is a
// wildcard itself.
func wildcardKey(name string) string {
	i := strings.IndexByte(name, '.')
	if i <= 0 || name[0] == '*' || i == len(name)-1 {
		return ""
	}
	return "*" + name[i:]
}

// route decides where a connection whose ClientHello names name goes: ep,
// the endpoint of this edge that serves it, or fwd, the siblings that hold
// its route. The most specific route in the region wins: an exact route
// here, an exact route on a sibling, a wildcard route here, a wildcard
// route on a sibling. Both are nil when nobody serves name (the edge then
// answers the handshake itself). Only the ClientHellos that have no exact
// route here cost a look at the region's table.
func (p *publicServer) route(c net.Conn, hello *tls.ClientHelloInfo, name string) (ep *Endpoint, fwd []RemoteRoute) {
	ep, exact, ok := p.router.lookupMatch(name)
	if ok && exact {
		return ep, nil
	}
	if fwd = p.fwd.forwardHolders(c, hello, name); fwd != nil {
		return nil, fwd
	}
	if ok {
		return ep, nil
	}
	if w := wildcardKey(name); w != "" {
		return nil, p.fwd.forwardHolders(c, hello, w)
	}
	return nil, nil
}
