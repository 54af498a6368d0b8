package edge

import (
	"crypto/tls"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/tollgate/tollgate/snapshot"
)

// Endpoint is one bound public name (or TCP address) and the session that
// serves it. Immutable after creation except for the session's own
// lifecycle.
type Endpoint struct {
	id         string // ep_...
	bindID     string // the agent's bind Id, echoed in proxy headers
	key        string // route key: lower-case host, or host:port for TCP
	url        string // public URL shown to the agent and the API
	proto      string // "https", "tcp", "tls"
	forwardsTo string
	minTLS     uint16 // crypto/tls version constant
	startedAt  time.Time
	session    EndpointOwner // the agent or SSH session that serves it
	proxyProto int32         // tcp/tls: PROXY protocol version sent to the upstream, 0 = none
	// termCert is the key pair a tls endpoint asked the edge to terminate
	// TLS with; nil passes the TLS stream through.
	termCert *tls.Certificate
	// access is the endpoint's account and what it asks of public clients
	// (IP policy, basic auth); see ippolicy.go. nil admits everyone.
	access *endpointAccess
	// release frees what the endpoint holds besides its route (a TCP
	// port); nil = nothing. It runs once, when the endpoint is unbound.
	release func()
}

// URL returns the endpoint's public URL.
func (ep *Endpoint) URL() string { return ep.url }

// Port returns the public port clients connect to: the port of a TCP
// endpoint's address, the edge's public HTTPS port for an HTTPS or TLS
// endpoint.
func (ep *Endpoint) Port() int {
	u, err := url.Parse(ep.url)
	if err != nil {
		return 0
	}
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		return n
	}
	return 443
}

// Info returns the endpoint as the control plane's API reports it.
func (ep *Endpoint) Info() snapshot.Endpoint {
	return snapshot.Endpoint{ID: ep.id, URL: ep.url, Proto: ep.proto, ForwardsTo: ep.forwardsTo, StartedAt: ep.startedAt}
}

// router maps route keys to endpoints. Reads take a read lock; binds and
// unbinds are rare.
type router struct {
	mu     sync.RWMutex
	routes map[string]*Endpoint
}

func newRouter() *router { return &router{routes: make(map[string]*Endpoint)} }

// lookup returns the endpoint bound at key.
func (r *router) lookup(key string) (*Endpoint, bool) {
	r.mu.RLock()
	ep, ok := r.routes[key]
	r.mu.RUnlock()
	return ep, ok
}

// bind installs ep at its key. When another endpoint holds the key, takeover
// decides: true replaces it (the old one is returned so the caller can tell
// its session), false refuses (ok is false and the holder is returned).
func (r *router) bind(ep *Endpoint, takeover func(holder *Endpoint) bool) (old *Endpoint, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if holder, taken := r.routes[ep.key]; taken && holder != ep {
		if !takeover(holder) {
			return holder, false
		}
		old = holder
	}
	r.routes[ep.key] = ep
	return old, true
}

// unbind removes ep if it still holds its key, and releases what ep holds
// (see endpoint.release) whether or not it still held the key.
func (r *router) unbind(ep *Endpoint) {
	r.mu.Lock()
	if cur, ok := r.routes[ep.key]; ok && cur == ep {
		delete(r.routes, ep.key)
	}
	r.mu.Unlock()
	if ep.release != nil {
		ep.release()
	}
}
