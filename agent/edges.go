package agent

// This file chooses the edges the agent's connections (legs) go to. Edges
// name themselves and list their region's live edges in every Auth and
// SrvInfo answer (tunnel.AuthRespExtra.EdgeID and RegionEdges); the agent
// keeps each leg on an edge no other leg holds, prefers edges that have not
// failed lately, and keeps no more legs than the region has edges.

import (
	"slices"
	"sync"
	"time"

	"github.com/tollgate/tollgate/tunnel"
)

// FailMemory is how long an edge that failed (a refused or dropped
// connection, a drain) is tried only after the edges that did not fail.
const FailMemory = time.Minute

// RegionRefresh is how often an agent with more than one HA connection
// asks one of its edges for the region's live edges (SrvInfo), so that it
// learns of edges that joined or left while its legs stayed up.
const RegionRefresh = 30 * time.Second

// edgeTarget is where one leg dials: addr, expecting the edge edgeID ("" =
// whichever edge answers there).
type edgeTarget struct {
	edgeID, addr string
}

// hold is the edge a leg reserved (dialing) or holds (connected).
type hold struct {
	edgeID, addr string
	connected    bool
}

// edgePicker is the agent's view of its region's edges: the newest list an
// edge sent, the edge each leg holds, and the edges that failed lately. Its
// methods are safe for concurrent use.
type edgePicker struct {
	want int              // legs wanted (Config.HAConnections)
	now  func() time.Time // time.Now; replaceable in tests

	mu     sync.Mutex
	list   []tunnel.RegionEdge  // nil until an edge listed its region
	holds  map[int]hold         // leg number → its edge
	active map[int]bool         // legs that keep a connection, also while they redial
	failed map[string]time.Time // edge ID or address → its last failure
	wake   chan struct{}        // closed and replaced when the list changes
}

func newEdgePicker(want int) *edgePicker {
	return &edgePicker{want: want, now: time.Now, holds: map[int]hold{}, active: map[int]bool{},
		failed: map[string]time.Time{}, wake: make(chan struct{})}
}

// changed returns a channel that is closed at the next change of the
// list. Only a longer list gives an idle leg an edge: a leg whose edge
// failed redials by itself, so a release wakes nobody.
func (p *edgePicker) changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wake
}

// broadcast wakes the waiters of changed; p.mu is held.
func (p *edgePicker) broadcast() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// target is how many legs the agent keeps: Config.HAConnections, but no
// more than the region has edges, and one while no edge has listed its
// region (an edge that predates the list, or the hosted platform's).
func (p *edgePicker) target() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.targetLocked()
}

func (p *edgePicker) targetLocked() int {
	if len(p.list) == 0 {
		return 1
	}
	return min(p.want, len(p.list))
}

// listed reports whether an edge has listed its region's edges.
func (p *edgePicker) listed() bool { return p.count() > 0 }

// count returns how many edges the newest list names; 0 = none listed.
func (p *edgePicker) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.list)
}

// update records the region's live edges as an edge listed them; an empty
// list (an edge that does not send one) changes nothing.
func (p *edgePicker) update(list []tunnel.RegionEdge) {
	if len(list) == 0 {
		return
	}
	// The edges list each edge once; keep the first of any repeated ID
	// all the same, so that target counts edges.
	clean := make([]tunnel.RegionEdge, 0, len(list))
	for _, e := range list {
		if e.EdgeID != "" && e.ServerAddr != "" && !slices.ContainsFunc(clean, func(c tunnel.RegionEdge) bool { return c.EdgeID == e.EdgeID }) {
			clean = append(clean, e)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.Equal(clean, p.list) || len(clean) == 0 {
		return
	}
	p.list = clean
	p.broadcast()
}

// pick reserves an edge for leg n and returns where to dial, or false when
// the leg has nothing to do: as many other legs as the region has edges
// (target) are active, or every listed edge is held by another leg. A leg
// is active from its first pick until a pick finds nothing for it: a leg
// that lost its edge and redials keeps its place, so an idle leg does not
// take it.
// home is the address the agent was configured with (or redirected to); it
// is the only target while no edge has listed its region. The order: listed
// edges that did not fail within FailMemory, in the list's order; then home,
// unless a listed edge has that address (it is that edge) or another leg
// holds an edge there; then listed edges that failed, the longest ago
// first.
func (p *edgePicker) pick(n int, home string) (edgeTarget, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	others := 0
	for leg := range p.active {
		if leg != n {
			others++
		}
	}
	if others >= p.targetLocked() {
		delete(p.active, n)
		return edgeTarget{}, false
	}
	heldID := map[string]bool{}
	heldAddr := map[string]bool{}
	for leg, h := range p.holds {
		if leg == n {
			continue
		}
		if h.edgeID != "" {
			heldID[h.edgeID] = true
		}
		heldAddr[h.addr] = true
	}
	now := p.now()
	recent := func(keys ...string) (time.Time, bool) {
		var last time.Time
		for _, k := range keys {
			if at, ok := p.failed[k]; ok && now.Sub(at) < FailMemory && at.After(last) {
				last = at
			}
		}
		return last, !last.IsZero()
	}
	var fresh, stale []edgeTarget
	for _, e := range p.list {
		if heldID[e.EdgeID] {
			continue
		}
		t := edgeTarget{edgeID: e.EdgeID, addr: e.ServerAddr}
		if _, failed := recent(e.EdgeID, e.ServerAddr); failed {
			stale = append(stale, t)
		} else {
			fresh = append(fresh, t)
		}
	}
	slices.SortStableFunc(stale, func(a, b edgeTarget) int {
		ta, _ := recent(a.edgeID, a.addr)
		tb, _ := recent(b.edgeID, b.addr)
		return ta.Compare(tb)
	})
	order := fresh
	listed := slices.ContainsFunc(p.list, func(e tunnel.RegionEdge) bool { return e.ServerAddr == home })
	if home != "" && !heldAddr[home] && !listed {
		order = append(order, edgeTarget{addr: home})
	}
	order = append(order, stale...)
	if len(order) == 0 {
		delete(p.active, n)
		return edgeTarget{}, false
	}
	t := order[0]
	p.holds[n] = hold{edgeID: t.edgeID, addr: t.addr}
	p.active[n] = true
	return t, true
}

// connected records that leg n reached the edge edgeID at addr. It
// returns false, and drops the leg's reservation, when another leg holds
// (or is dialing) that edge: two legs on one edge would serve nothing
// more, and the edge would give the second the first one's names. An
// unknown edgeID ("": an edge that does not name itself) is never a
// duplicate.
func (p *edgePicker) connected(n int, edgeID, addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if edgeID != "" {
		for leg, h := range p.holds {
			if leg != n && h.edgeID == edgeID {
				delete(p.holds, n)
				return false
			}
		}
	}
	p.holds[n] = hold{edgeID: edgeID, addr: addr, connected: true}
	return true
}

// release drops leg n's edge; failed records a failure of that edge (and
// of its address when the edge is unknown), which puts it behind the
// others for FailMemory.
func (p *edgePicker) release(n int, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, ok := p.holds[n]
	if !ok {
		return
	}
	delete(p.holds, n)
	if failed {
		now := p.now()
		for k, at := range p.failed { // keep the map as small as the region
			if now.Sub(at) >= FailMemory {
				delete(p.failed, k)
			}
		}
		if h.edgeID != "" {
			p.failed[h.edgeID] = now
		} else {
			p.failed[h.addr] = now
		}
	}
}

// held returns the IDs (or, for edges that do not name themselves, the
// addresses) of the edges the legs are connected to, by leg number.
func (p *edgePicker) held() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	legs := make([]int, 0, len(p.holds))
	for n, h := range p.holds {
		if h.connected {
			legs = append(legs, n)
		}
	}
	slices.Sort(legs)
	out := make([]string, 0, len(legs))
	for _, n := range legs {
		h := p.holds[n]
		if h.edgeID != "" {
			out = append(out, h.edgeID)
		} else {
			out = append(out, h.addr)
		}
	}
	return out
}
