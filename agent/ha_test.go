package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/tunnel"
)

// newRegion starts n fake edges of region eu, named ed_1..ed_n, each
// listing all of them (at their own addresses) as its region's edges.
func newRegion(t *testing.T, n int) []*fakeEdge {
	t.Helper()
	edges := make([]*fakeEdge, n)
	var list []tunnel.RegionEdge
	for i := range edges {
		edges[i] = newFakeEdge(t, edgeOpts{tcp: true})
		edges[i].id = "ed_" + string(rune('1'+i))
		list = append(list, tunnel.RegionEdge{EdgeID: edges[i].id, ServerAddr: edges[i].addr})
	}
	for i, e := range edges {
		// Each edge lists itself first, as a Tollgate edge does.
		own := append([]tunnel.RegionEdge{list[i]}, slices.Delete(slices.Clone(list), i, i+1)...)
		e.set(func() { e.listed = own })
	}
	return edges
}

// legsOnline returns the edge IDs of the online legs, by leg number.
func legsOnline(a *Agent) []string {
	var out []string
	for _, l := range a.Status().Legs {
		if l.State == SessionOnline {
			out = append(out, l.EdgeID)
		}
	}
	return out
}

// waitLegs waits until the online legs hold exactly the edges want (in
// any order).
func waitLegs(t *testing.T, a *Agent, want ...string) {
	t.Helper()
	slices.Sort(want)
	waitFor(t, "legs on "+joinIDs(want), func() bool {
		got := legsOnline(a)
		slices.Sort(got)
		return slices.Equal(got, want)
	})
}

func joinIDs(ids []string) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ","
		}
		s += id
	}
	return s
}

// TestAgentHALegs: with HAConnections 2 and three edges that list their
// region, the agent keeps two legs on two distinct edges; both legs send the
// agent's InstanceID, their own LegNumber, and bind the endpoint with the
// same bind Id, token and URL (an unnamed endpoint asks the second edge
// for the name the first gave); a request on either leg is served. When
// the first leg's edge dies, the second keeps serving and the first leg
// moves to the third edge, which it binds with the same Id and token.
func TestAgentHALegs(t *testing.T) {
	edges := newRegion(t, 3)
	cfg := baseConfig(t, edges[0], "tcp", config.Endpoint{Name: "web", Proto: "http", Upstream: helloUpstream(t)})
	cfg.HAConnections = 2
	ra := startAgent(t, cfg)
	s1 := edges[0].waitSession(t)
	ra.waitReady(t)
	s2 := edges[1].waitSession(t)
	waitLegs(t, ra.Agent, "ed_1", "ed_2")

	st := ra.Status()
	if st.Connections != 2 || st.RegionEdges != 3 || st.State != SessionOnline || st.SessionID != "ts_1" {
		t.Fatalf("status = %+v", st)
	}
	a1, b1, _ := edges[0].snapshot()
	a2, b2, _ := edges[1].snapshot()
	if len(a1) != 1 || len(a2) != 1 || len(b1) != 1 || len(b2) != 1 {
		t.Fatalf("auths %d/%d binds %d/%d, want one each on ed_1 and ed_2", len(a1), len(a2), len(b1), len(b2))
	}
	if a1[0].Extra.InstanceID == "" || a1[0].Extra.InstanceID != a2[0].Extra.InstanceID ||
		a1[0].Extra.LegNumber != 0 || a2[0].Extra.LegNumber != 1 {
		t.Fatalf("legs' Auth: instance %q/%q leg %d/%d; want one instance ID, legs 0 and 1",
			a1[0].Extra.InstanceID, a2[0].Extra.InstanceID, a1[0].Extra.LegNumber, a2[0].Extra.LegNumber)
	}
	ep := ra.Endpoints()[0]
	if b2[0].ID != ep.BindID || b2[0].Extra.Token != "token-web" || ep.Connections != 2 {
		t.Fatalf("second leg's bind: Id %q Token %q (endpoint %+v)", b2[0].ID, b2[0].Extra.Token, ep)
	}
	if o, err := tunnel.DecodeHTTPOptions(b2[0].Opts); err != nil || o.URL != ep.PublicURL {
		t.Fatalf("second leg asked for %q (%v), want the first leg's URL %s", o.URL, err, ep.PublicURL)
	}
	if o, _ := tunnel.DecodeHTTPOptions(b1[0].Opts); o.URL != "" {
		t.Fatalf("first bind asked for %q, want the edge's choice", o.URL)
	}
	for i, s := range []*tunnel.ServerSession{s1, s2} {
		if resp, body := proxyRequest(t, s, ep.BindID); resp.StatusCode != 200 || body != "hello from /hello" {
			t.Fatalf("through leg %d: %d %q", i, resp.StatusCode, body)
		}
	}

	// ed_1 dies: ed_2 keeps serving at once; leg 0 moves to ed_3.
	edges[0].kill()
	if resp, body := proxyRequest(t, s2, ep.BindID); resp.StatusCode != 200 || body != "hello from /hello" {
		t.Fatalf("through the surviving leg: %d %q", resp.StatusCode, body)
	}
	s3 := edges[2].waitSession(t)
	waitLegs(t, ra.Agent, "ed_2", "ed_3")
	a3, b3, _ := edges[2].snapshot()
	if len(a3) != 1 || a3[0].Extra.LegNumber != 0 || a3[0].Extra.InstanceID != a1[0].Extra.InstanceID {
		t.Fatalf("ed_3 auths %+v; want leg 0 of the same instance", a3)
	}
	if len(b3) != 1 || b3[0].ID != ep.BindID || b3[0].Extra.Token != "token-web" {
		t.Fatalf("ed_3 binds %+v; want the same bind Id and token", b3)
	}
	if resp, body := proxyRequest(t, s3, ep.BindID); resp.StatusCode != 200 || body != "hello from /hello" {
		t.Fatalf("through the moved leg: %d %q", resp.StatusCode, body)
	}
	if got := ra.Endpoints()[0]; got.PublicURL != ep.PublicURL || got.State != StateOnline || got.Connections != 2 {
		t.Fatalf("endpoint after the move: %+v", got)
	}

	// Cancel: each leg unbinds on its own edge.
	ra.cancel()
	if err := ra.waitDone(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	for _, e := range edges[1:] {
		if _, _, unbinds := e.snapshot(); len(unbinds) != 1 || unbinds[0] != ep.BindID {
			t.Fatalf("%s unbinds = %v", e.id, unbinds)
		}
	}
}

// TestAgentHAOneEdge: an edge that lists only itself (tollgated dev), or
// none at all (an older edge), gets one leg; the other waits idle without
// dialing, and the agent serves as with one connection.
func TestAgentHAOneEdge(t *testing.T) {
	for _, listed := range []bool{true, false} {
		name := map[bool]string{true: "lists itself", false: "lists nothing"}[listed]
		t.Run(name, func(t *testing.T) {
			e := newFakeEdge(t, edgeOpts{tcp: true})
			if listed {
				e.set(func() { e.id, e.listed = "ed_1", []tunnel.RegionEdge{{EdgeID: "ed_1", ServerAddr: e.addr}} })
			}
			cfg := baseConfig(t, e, "tcp", config.Endpoint{Name: "web", Proto: "http", Upstream: helloUpstream(t)})
			cfg.HAConnections = 3
			ra := startAgent(t, cfg)
			ra.waitReady(t)
			waitFor(t, "the other legs idle", func() bool {
				legs := ra.Status().Legs
				return len(legs) == 3 && legs[0].State == SessionOnline && legs[1].State == LegIdle && legs[2].State == LegIdle
			})
			if auths, binds, _ := e.snapshot(); len(auths) != 1 || len(binds) != 1 {
				t.Fatalf("%d auths, %d binds; want one leg", len(auths), len(binds))
			}
			// The leg reconnects as it would alone: resuming its session.
			s := e.waitSession(t)
			_ = s.Close(errors.New("test: connection dropped"))
			ra.waitEvent(t, EventDisconnected)
			s = e.waitSession(t)
			ra.waitEvent(t, EventConnected)
			auths, _, _ := e.snapshot()
			if len(auths) != 2 || auths[1].ClientID != "client-1" || auths[1].Extra.LegNumber != 0 {
				t.Fatalf("re-auth %+v; want leg 0 resuming client-1", auths[len(auths)-1])
			}
			if resp, body := proxyRequest(t, s, ra.Endpoints()[0].BindID); resp.StatusCode != 200 || body != "hello from /hello" {
				t.Fatalf("after reconnect: %d %q", resp.StatusCode, body)
			}
		})
	}
}

// TestAgentHAOneAddress: edges behind one load-balanced address list
// themselves at that address; a leg that lands on the edge another leg
// holds (the EdgeID says so) closes that session without binding and
// dials again, until it reaches another edge.
func TestAgentHAOneAddress(t *testing.T) {
	e1 := newFakeEdge(t, edgeOpts{tcp: true})
	e2 := newFakeEdge(t, edgeOpts{tcp: true})
	// The balancer sends the first two connections to ed_1, then
	// alternates, starting with ed_2.
	var n atomic.Int32
	lb := newSplitter(t, func() string {
		i := n.Add(1)
		if i <= 2 || i%2 == 0 {
			return e1.addr
		}
		return e2.addr
	})
	list := []tunnel.RegionEdge{{EdgeID: "ed_1", ServerAddr: lb}, {EdgeID: "ed_2", ServerAddr: lb}}
	e1.set(func() { e1.id, e1.listed = "ed_1", list })
	e2.set(func() { e2.id, e2.listed = "ed_2", list })
	cfg := baseConfig(t, e1, "tcp", config.Endpoint{Name: "web", Proto: "http", Upstream: helloUpstream(t)})
	cfg.ServerAddr = lb
	ra := startAgent(t, cfg) // HAConnections 0: the default, 2
	ra.waitReady(t)
	waitLegs(t, ra.Agent, "ed_1", "ed_2")
	a1, b1, _ := e1.snapshot()
	a2, b2, _ := e2.snapshot()
	if len(a1) != 2 || len(b1) != 1 || len(a2) != 1 || len(b2) != 1 {
		t.Fatalf("ed_1: %d auths %d binds; ed_2: %d auths %d binds; want the duplicate on ed_1 unbound", len(a1), len(b1), len(a2), len(b2))
	}
	if a1[1].Extra.LegNumber != 1 || a2[0].Extra.LegNumber != 1 {
		t.Fatalf("leg numbers %d, %d; want the second leg on both tries", a1[1].Extra.LegNumber, a2[0].Extra.LegNumber)
	}
}

// newSplitter is a TCP balancer on 127.0.0.1 that relays each connection
// to the address next returns.
func newSplitter(t *testing.T, next func() string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", next())
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); up.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// TestAgentHADrainMoves: an edge that drains (GoAway) loses its leg at
// once, without a backoff delay, to an edge no leg holds, while the other
// leg keeps serving.
func TestAgentHADrainMoves(t *testing.T) {
	edges := newRegion(t, 3)
	cfg := baseConfig(t, edges[0], "tcp", config.Endpoint{Name: "web", Proto: "http", Upstream: helloUpstream(t)})
	ra := startAgent(t, cfg)
	s1 := edges[0].waitSession(t)
	ra.waitReady(t)
	edges[1].waitSession(t)
	waitLegs(t, ra.Agent, "ed_1", "ed_2")
	if err := s1.GoAway("the edge is restarting"); err != nil {
		t.Fatal(err)
	}
	ev := ra.waitEvent(t, EventDisconnected)
	if !errors.Is(ev.Err, tunnel.ErrGoingAway) || ev.Delay != 0 || ev.Legs != 1 || ev.Leg != 0 {
		t.Fatalf("disconnect event %+v: want leg 0 going away, no delay, one leg still online", ev)
	}
	edges[2].waitSession(t)
	waitLegs(t, ra.Agent, "ed_2", "ed_3")
	if n := ra.bo.next.Load(); n != 0 {
		t.Fatalf("backoff used %d times for a drain", n)
	}
}

// TestAgentHAStopTunnelEverywhere: an endpoint the edge of one leg stops
// is stopped for the agent and unbound on the other legs.
func TestAgentHAStopTunnelEverywhere(t *testing.T) {
	edges := newRegion(t, 2)
	cfg := baseConfig(t, edges[0], "tcp",
		config.Endpoint{Name: "a", Proto: "tcp", Upstream: "1"},
		config.Endpoint{Name: "b", Proto: "tcp", Upstream: "2"})
	ra := startAgent(t, cfg)
	s1 := edges[0].waitSession(t)
	ra.waitReady(t)
	waitLegs(t, ra.Agent, "ed_1", "ed_2")
	id := ra.Endpoints()[0].BindID
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s1.StopTunnel(ctx, id, "Endpoint removed by an administrator.", "TG_151"); err != nil {
		t.Fatal(err)
	}
	ra.waitEvent(t, EventEndpointStopped)
	waitFor(t, "the unbind on the other leg", func() bool {
		_, _, unbinds := edges[1].snapshot()
		return slices.Contains(unbinds, id)
	})
	if ep := ra.Endpoints()[0]; ep.State != StateStopped || ep.Connections != 0 {
		t.Fatalf("stopped endpoint: %+v", ep)
	}
	if ep := ra.Endpoints()[1]; ep.State != StateOnline || ep.Connections != 2 {
		t.Fatalf("the other endpoint: %+v", ep)
	}
}

// TestAgentHAOrphanedEndpoint: an edge that gives a TCP endpoint another
// address than the first leg holds gets no bind of it from the second leg
// (the endpoint is left to the first). When the first leg's edge dies, the
// endpoint would be served by no leg: the second leg binds it, taking the
// address its edge gives.
func TestAgentHAOrphanedEndpoint(t *testing.T) {
	edges := newRegion(t, 2)
	edges[1].set(func() { edges[1].tcpHost = "tcp.other.localhost" })
	cfg := baseConfig(t, edges[0], "tcp",
		config.Endpoint{Name: "web", Proto: "http", Upstream: helloUpstream(t)},
		config.Endpoint{Name: "db", Proto: "tcp", Upstream: helloUpstream(t)})
	ra := startAgent(t, cfg)
	ra.waitReady(t)
	s2 := edges[1].waitSession(t)
	waitLegs(t, ra.Agent, "ed_1", "ed_2")
	waitFor(t, "ed_2 to unbind db", func() bool { _, _, u := edges[1].snapshot(); return len(u) == 1 })
	db := ra.Endpoints()[1]
	if db.Connections != 1 || db.PublicURL != "tcp://db.tcp.tollgate.localhost:20001" || ra.Endpoints()[0].Connections != 2 {
		t.Fatalf("endpoints %+v: want db on one leg at ed_1's address, web on two", ra.Endpoints())
	}

	edges[0].kill()
	waitFor(t, "db bound on the second leg", func() bool {
		ep := ra.Endpoints()[1]
		return ep.Connections == 1 && ep.State == StateOnline && ep.PublicURL == "tcp://db.tcp.other.localhost:20001"
	})
	if resp, body := proxyRequest(t, s2, db.BindID); resp.StatusCode != 200 || body != "hello from /hello" {
		t.Fatalf("db through the second leg: %d %q", resp.StatusCode, body)
	}
}
