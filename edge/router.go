package edge

import (
	"crypto/tls"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// hsts decides an HTTPS endpoint's Strict-Transport-Security (hsts.go);
	// nil for other protos.
	hsts *endpointHSTS
	// release frees what the endpoint holds besides its route (a TCP
	// port, its holder in the region's route table); nil = nothing. It
	// runs once, when the endpoint is unbound.
	release func()
	// What the region's route table records of the bind (leases.go).
	accountID  string
	sessionID  string // ts_...
	instanceID string // the agent process's, from Auth; "" from SDKs
	pooling    bool   // the bind asked for endpoint pooling
	// pooled is true while ep shares its key with other endpoints (the
	// router sets it): its agent then shows itself alive before a stream
	// opens to it (poolhealth.go).
	pooled atomic.Bool
}

// holder returns the endpoint as the region's route table records it.
func (ep *Endpoint) holder(edgeID, region string) snapshot.RouteHolder {
	return snapshot.RouteHolder{ID: ep.id, Region: region, Proto: ep.proto, Key: ep.key, AccountID: ep.accountID,
		EdgeID: edgeID, SessionID: ep.sessionID, InstanceID: ep.instanceID, Pooling: ep.pooling}
}

// joins reports whether other may share ep's key as one more member of
// its pool: the region-wide rule (snapshot.RouteHolder.Joins).
func (ep *Endpoint) joins(other *Endpoint) bool {
	h, o := ep.holder("", ""), other.holder("", "")
	return h.Joins(&o)
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

// router maps route keys to endpoints: one endpoint, or a pool of
// endpoints that share the key (agents of one account that all asked for
// pooling, or the legs of one agent; snapshot.RouteHolder.Joins). Reads
// take a read lock; binds and unbinds are rare.
//
// A wildcard endpoint's key is "*.<parent>" (docs/wildcard-endpoints.md):
// it is kept in wild under "<parent>" and matches a name exactly one label
// under parent ("a.example.com" for "*.example.com", not "a.b.example.com"
// nor "example.com"), as a DNS wildcard record and a wildcard certificate
// do. An exact key always wins over a wildcard one (most specific match).
type router struct {
	mu     sync.RWMutex
	routes map[string]*routePool // exact keys
	wild   map[string]*routePool // wildcard keys, by the parent they cover
}

// routePool is the endpoints bound at one key. members is replaced, never
// modified, under the router's lock; next spreads picks round-robin.
type routePool struct {
	members []*Endpoint
	next    atomic.Uint32
}

func newRouter() *router {
	return &router{routes: make(map[string]*routePool), wild: make(map[string]*routePool)}
}

// table returns the map that holds key and key's index in it: wild under
// the parent for a wildcard key "*.<parent>", else routes under key.
func (r *router) table(key string) (map[string]*routePool, string) {
	if parent, ok := strings.CutPrefix(key, "*."); ok {
		return r.wild, parent
	}
	return r.routes, key
}

// match returns the pool serving name and whether it was bound at name
// itself (exact) rather than at the wildcard covering it. Call it with the
// lock held. A name whose first label is "*" matches no wildcard: a
// request never names the wildcard itself. No allocation.
func (r *router) match(name string) (p *routePool, exact bool) {
	if p = r.routes[name]; p != nil {
		return p, true
	}
	if len(r.wild) == 0 {
		return nil, false
	}
	if i := strings.IndexByte(name, '.'); i > 0 && name[0] != '*' {
		return r.wild[name[i+1:]], false
	}
	return nil, false
}

// lookup returns the first endpoint serving name, exact or by wildcard:
// for what every member of a pool shares (proto, minimum TLS version, that
// the name is bound).
func (r *router) lookup(name string) (*Endpoint, bool) {
	ep, _, ok := r.lookupMatch(name)
	return ep, ok
}

// at returns the first endpoint bound at exactly key ("*.<parent>" for a
// wildcard endpoint), with no wildcard matching: what the region's route
// table records for this edge.
func (r *router) at(key string) (*Endpoint, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, k := r.table(key)
	if p := t[k]; p != nil {
		return p.members[0], true
	}
	return nil, false
}

// lookupMatch is lookup that also reports whether the endpoint is bound at
// name itself (exact) or at the wildcard covering it.
func (r *router) lookupMatch(name string) (ep *Endpoint, exact, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if p, exact := r.match(name); p != nil {
		return p.members[0], exact, true
	}
	return nil, false, false
}

// pick returns the endpoint that serves the next public request or
// connection at name (exact, else by wildcard): the members of a pool in
// turn (round-robin), so that the load spreads across them, skipping
// members whose agent stopped answering or whose session ended
// (Endpoint.available). When none is available it returns the next one
// all the same (its open then fails fast, or finds it back). A pool serves
// while one member lives.
func (r *router) pick(name string) (*Endpoint, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, _ := r.match(name)
	if p == nil {
		return nil, false
	}
	n := len(p.members)
	if n == 1 {
		return p.members[0], true
	}
	start := int(p.next.Add(1)-1) % n
	for i := range n {
		if m := p.members[(start+i)%n]; m.available() {
			return m, true
		}
	}
	return p.members[start], true
}

// setPooled marks the members of a pool as pooled, or a lone endpoint as
// not; call it with the router's lock held, on the members now at a key.
func setPooled(members []*Endpoint) {
	for _, m := range members {
		m.pooled.Store(len(members) > 1)
	}
}

// bind installs ep at its key. When endpoints hold the key already, ep
// joins them as one more member of the pool when each of them joins it
// (Endpoint.joins); otherwise takeover decides for each: true replaces
// them all (returned in old so the caller can tell their sessions), false
// refuses (ok is false and holder is the first that refused).
func (r *router) bind(ep *Endpoint, takeover func(holder *Endpoint) bool) (old []*Endpoint, holder *Endpoint, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, k := r.table(ep.key)
	p := t[k]
	if p == nil {
		t[k] = &routePool{members: []*Endpoint{ep}}
		return nil, nil, true
	}
	if slices.Contains(p.members, ep) {
		return nil, nil, true
	}
	joins := true
	for _, m := range p.members {
		joins = joins && m.session != ep.session && m.joins(ep)
	}
	if joins {
		np := &routePool{members: append(slices.Clip(p.members), ep)}
		setPooled(np.members)
		t[k] = np
		return nil, nil, true
	}
	for _, m := range p.members {
		if takeover == nil || !takeover(m) {
			return nil, m, false
		}
	}
	t[k] = &routePool{members: []*Endpoint{ep}}
	setPooled([]*Endpoint{ep})
	return p.members, nil, true
}

// unbind removes ep if it still holds its key (the pool's other members
// keep it), and releases what ep holds (see endpoint.release) whether or
// not it still held the key.
func (r *router) unbind(ep *Endpoint) {
	r.mu.Lock()
	t, k := r.table(ep.key)
	if p := t[k]; p != nil {
		if i := slices.Index(p.members, ep); i >= 0 {
			if len(p.members) == 1 {
				delete(t, k)
			} else {
				np := &routePool{members: slices.Delete(slices.Clone(p.members), i, i+1)}
				setPooled(np.members)
				t[k] = np
			}
		}
	}
	r.mu.Unlock()
	if ep.release != nil {
		ep.release()
	}
}
