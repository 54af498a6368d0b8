package snapshot

import (
	"iter"
	"slices"
	"strings"
)

// The region's route table: which agent sessions on which edges hold each
// public name or TCP address of a region (issue 13 "one name, one owner,
// region-wide"). The control plane arbitrates binds through the store
// (route_holders, migration 00007) and the table reaches every edge as one
// more snapshot collection, through the change log and the feed, so a bind
// on one edge is in every edge's snapshot within the feed's latency.

// RouteHolder is one live bind of a route: the endpoint an agent session
// bound on an edge. A route (region, proto, key) may have several holders:
// the legs of one agent on several edges (same InstanceID), or a pool of
// agents of one account that all asked for pooling.
type RouteHolder struct {
	// ID is the endpoint's ID (ep_...), unique per bind.
	ID string `json:"id"`
	// Region is the region of the edge that holds it.
	Region string `json:"region"`
	// Proto is "https", "tcp" or "tls".
	Proto string `json:"proto"`
	// Key is the route key: the lower-case hostname (https, tls) or
	// "host:port" (tcp).
	Key string `json:"key"`
	// AccountID is the account of the session that bound it.
	AccountID string `json:"account_id"`
	// EdgeID is the edge the session is connected to (ed_..., or edge_<region>
	// in tollgated dev).
	EdgeID string `json:"edge_id"`
	// SessionID is the agent session (ts_...).
	SessionID string `json:"session_id"`
	// InstanceID is the agent process's instance ID (tunnel.AuthExtra),
	// the same on all its legs; "" from SDK agents.
	InstanceID string `json:"instance_id,omitempty"`
	// Pooling is set when the bind asked for endpoint pooling
	// (BindExtra.PoolingEnabled).
	Pooling bool `json:"pooling,omitempty"`
}

// RouteKey returns the index key of the holders of key in region. The
// proto is not part of it: https and tls endpoints share hostnames (an
// edge routes both by name), and a TCP key carries a port, so it never
// equals a hostname.
func RouteKey(region, key string) string { return region + "\x00" + key }

// Joins reports whether a new bind c may join h as one more holder of the
// same route: the same account and proto, and either legs of one agent
// (same non-empty InstanceID) or both asking for pooling. This is the rule
// every edge and the control plane apply (docs/route-ownership.md).
func (h *RouteHolder) Joins(c *RouteHolder) bool {
	if h.AccountID != c.AccountID || h.Proto != c.Proto {
		return false
	}
	return c.InstanceID != "" && h.InstanceID == c.InstanceID || h.Pooling && c.Pooling
}

func routeHolderID(v *RouteHolder) string { return v.ID }

// RouteHolders returns the holders of key (a lower-case hostname, or
// host:port) in region, ordered by ID; nil when none. Holders on edges that
// are gone are still listed until the control plane drops them: callers
// check their edges against the live-edge directory.
func (s *Snapshot) RouteHolders(region, key string) []*RouteHolder {
	l, _ := s.routesByKey.get(RouteKey(region, key))
	return l
}

// RouteHolder returns the holder with the given endpoint ID.
func (s *Snapshot) RouteHolder(id string) (*RouteHolder, bool) { return s.routes.get(id) }

// AllRouteHolders yields every holder of every region, in no particular
// order.
func (s *Snapshot) AllRouteHolders() iter.Seq[*RouteHolder] { return seq(&s.routes) }

// indexRoutes builds the route indexes of a new snapshot.
func (s *Snapshot) indexRoutes(list []RouteHolder) error {
	s.routes = newCowMap[*RouteHolder](len(list))
	s.routesByKey = newCowMap[[]*RouteHolder](len(list))
	if err := index(&s.routes, list, routeHolderID); err != nil {
		return err
	}
	byKey := map[string][]*RouteHolder{}
	for i := range list {
		h := &list[i]
		k := RouteKey(h.Region, h.Key)
		byKey[k] = append(byKey[k], h)
	}
	for k, l := range byKey {
		sortHolders(l)
		s.routesByKey.put(k, l)
	}
	return nil
}

func sortHolders(l []*RouteHolder) {
	slices.SortFunc(l, func(a, b *RouteHolder) int { return strings.Compare(a.ID, b.ID) })
}

// applyRoutes applies c to the holders by ID and rebuilds the holder lists
// of the routes it touches, in O(change).
func applyRoutes(s *Snapshot, c *CollectionDelta[RouteHolder]) (cowMap[*RouteHolder], cowMap[[]*RouteHolder]) {
	ids, byKey := s.routes.edit(), s.routesByKey.edit()
	touched := map[string]bool{}
	for _, k := range c.Delete {
		if old, ok := ids.get(k); ok {
			touched[RouteKey(old.Region, old.Key)] = true
			ids.del(k)
		}
	}
	for i := range c.Upsert {
		v := &c.Upsert[i]
		if old, ok := ids.get(v.ID); ok {
			touched[RouteKey(old.Region, old.Key)] = true
		}
		touched[RouteKey(v.Region, v.Key)] = true
		ids.set(v.ID, v)
	}
	for k := range touched {
		old, _ := byKey.get(k)
		list := make([]*RouteHolder, 0, len(old)+1)
		for _, h := range old {
			if cur, ok := ids.get(h.ID); ok && cur == h {
				list = append(list, h)
			}
		}
		for i := range c.Upsert {
			if v := &c.Upsert[i]; RouteKey(v.Region, v.Key) == k {
				list = append(list, v)
			}
		}
		if len(list) == 0 {
			byKey.del(k)
			continue
		}
		sortHolders(list)
		byKey.set(k, slices.Clip(list))
	}
	return ids.done(), byKey.done()
}

// Wire types of the route leases (/edge/v1/routes...), which an edge calls
// at bind time.

// RouteClaim is the body of POST /edge/v1/routes/claim: an edge asks to
// record a new holder of a route.
type RouteClaim struct {
	Holder RouteHolder `json:"holder"`
	// Takeover is set when the edge verified the bind's token for
	// (account, proto, key): the holders of the same account on other
	// edges are displaced (a reconnecting agent takes its name back).
	Takeover bool `json:"takeover,omitempty"`
}

// RouteClaimAnswer is the control plane's decision on a RouteClaim.
type RouteClaimAnswer struct {
	// Granted is true when the holder was recorded (granted, joined, or a
	// takeover).
	Granted bool `json:"granted"`
	// Revision is the store revision that recorded it (0 when refused):
	// from that revision on, the edge's snapshot lists the holder.
	Revision uint64 `json:"revision,omitempty"`
	// Displaced lists the holders a takeover removed.
	Displaced []RouteHolder `json:"displaced,omitempty"`
	// Conflict is the holder that made the control plane refuse; the edge
	// tells the agent what to do from it (never another account's IDs).
	Conflict *RouteHolder `json:"conflict,omitempty"`
}

// RouteRelease is the body of POST /edge/v1/routes/release: holders the
// edge no longer has (unbound, session ended).
type RouteRelease struct {
	EdgeID string   `json:"edge_id"`
	IDs    []string `json:"ids"`
}

// RouteSync is the body of PUT /edge/v1/routes: the complete list of the
// holders an edge has. The control plane drops the edge's other holders
// and records the missing ones under the ownership rule; the ones it cannot
// record (another holder won the name meanwhile) come back as conflicts,
// which the edge closes with TG_334. An edge sends it when it starts
// (an empty list drops what a previous process left) and after the
// control plane was unreachable.
type RouteSync struct {
	EdgeID  string        `json:"edge_id"`
	Region  string        `json:"region"`
	Holders []RouteHolder `json:"holders"`
}

// RouteSyncAnswer answers a RouteSync.
type RouteSyncAnswer struct {
	// Conflicts are the IDs of holders that could not be recorded.
	Conflicts []string `json:"conflicts,omitempty"`
	// Revision is the store revision after the sync.
	Revision uint64 `json:"revision"`
}
