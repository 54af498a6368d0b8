package edge

import (
	"github.com/tollgate/tollgate/snapshot"
)

// RemoteRoute is one holder of a route key on another live edge of this
// edge's region: the edge's ID (ed_…) and its edge-to-edge address
// (snapshot.EdgeInfo.PeerAddr, HOST:PORT).
type RemoteRoute struct {
	EdgeID, PeerAddr string
}

// RouteDirectory is the region's route table as an edge reads it. Its
// methods are called on the public connection path and must not block on
// the network. Keys are those of the router: a lower-case hostname for
// https and tls, "host:port" for tcp.
type RouteDirectory interface {
	// RemoteHolders returns the holders of (proto, key) in this edge's
	// region on OTHER edges that are live, with their edge's PeerAddr
	// resolved; nil when none. proto is "https", "tls" or "tcp".
	RemoteHolders(proto, key string) []RemoteRoute
	// RemoteTCPKeys returns the keys ("host:port") of the tcp routes held
	// on other live edges of the region: this edge listens on their ports
	// too, and forwards what it accepts there.
	RemoteTCPKeys() []string
}

// RouteTable reads the region's route table from the edge's snapshot (the
// route_holders collection the control plane keeps, snapshot/routes.go)
// and the live edges from the edge directory. It implements
// RouteDirectory. It reads only memory: a snapshot lookup and the
// directory's list.
type RouteTable struct {
	region string
	edgeID string
	snap   func() *snapshot.Snapshot
	dir    EdgeDirectory // nil: every edge named in the table counts as live
}

var _ RouteDirectory = (*RouteTable)(nil)

// NewRouteTable returns the route table of edgeID's region as snap (the
// edge's current snapshot, never nil) and dir (the live edges; nil counts
// every edge as live) tell it.
func NewRouteTable(region, edgeID string, snap func() *snapshot.Snapshot, dir EdgeDirectory) *RouteTable {
	return &RouteTable{region: region, edgeID: edgeID, snap: snap, dir: dir}
}

// liveEdges returns the live edges of the region by ID, or nil when the
// table has no directory or the directory lists no edge yet.
func (t *RouteTable) liveEdges() map[string]snapshot.EdgeInfo {
	if t.dir == nil {
		return nil
	}
	edges := t.dir.Edges()
	if len(edges) == 0 {
		return nil // not known yet (no answer from the control plane): count every edge as live
	}
	out := map[string]snapshot.EdgeInfo{}
	for _, e := range edges {
		if e.Region == t.region {
			out[e.ID] = e
		}
	}
	return out
}

// remote returns the holders of key on other live edges of the region,
// with the live edges (nil without a directory).
func (t *RouteTable) remote(key string) ([]*snapshot.RouteHolder, map[string]snapshot.EdgeInfo) {
	hs := t.snap().RouteHolders(t.region, key)
	if len(hs) == 0 {
		return nil, nil
	}
	live := t.liveEdges()
	var out []*snapshot.RouteHolder
	for _, h := range hs {
		if h.EdgeID == t.edgeID {
			continue
		}
		if live != nil {
			if _, ok := live[h.EdgeID]; !ok {
				continue
			}
		}
		out = append(out, h)
	}
	return out, live
}

// RemoteHolders implements RouteDirectory: one entry per other live edge
// that holds (proto, key) and has an edge-to-edge address.
func (t *RouteTable) RemoteHolders(proto, key string) []RemoteRoute {
	hs, live := t.remote(key)
	var out []RemoteRoute
	for _, h := range hs {
		if h.Proto != proto {
			continue
		}
		addr := live[h.EdgeID].PeerAddr
		if addr == "" {
			continue
		}
		dup := false
		for _, r := range out {
			dup = dup || r.EdgeID == h.EdgeID
		}
		if !dup {
			out = append(out, RemoteRoute{EdgeID: h.EdgeID, PeerAddr: addr})
		}
	}
	return out
}

// RemoteTCPKeys implements RouteDirectory: the tcp keys held on other live
// edges of the region. It costs O(holders in the table).
func (t *RouteTable) RemoteTCPKeys() []string {
	live := t.liveEdges()
	seen := map[string]bool{}
	var out []string
	for h := range t.snap().AllRouteHolders() {
		if h.Region != t.region || h.Proto != "tcp" || h.EdgeID == t.edgeID || seen[h.Key] {
			continue
		}
		if live != nil {
			if _, ok := live[h.EdgeID]; !ok {
				continue
			}
		}
		seen[h.Key] = true
		out = append(out, h.Key)
	}
	return out
}

// conflict applies the ownership rule to a bind h against the holders of
// its key on other live edges, as the table knows them (the control plane
// is unreachable, or a holder of this edge vanished from the table): the
// first holder that refuses h, or nil when h may hold the key. takeover
// lets h displace holders of its own account.
func (t *RouteTable) conflict(h *snapshot.RouteHolder, takeover bool) *snapshot.RouteHolder {
	hs, _ := t.remote(h.Key)
	for _, o := range hs {
		if o.AccountID != h.AccountID {
			return o
		}
	}
	for _, o := range hs {
		if !o.Joins(h) && !takeover {
			return o
		}
	}
	return nil
}
