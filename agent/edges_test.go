package agent

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/tunnel"
)

// TestEdgePicker: the order in which legs are given edges, and when a leg
// gets none.
func TestEdgePicker(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newEdgePicker(2)
	p.now = func() time.Time { return now }
	pick := func(n int, home string) string {
		t.Helper()
		tg, ok := p.pick(n, home)
		if !ok {
			return "none"
		}
		if tg.edgeID == "" {
			return "home " + tg.addr
		}
		return tg.edgeID
	}

	// No list yet: one leg, at home.
	if got := pick(0, "lb:443"); got != "home lb:443" {
		t.Fatalf("first pick = %s", got)
	}
	if !p.connected(0, "", "lb:443") {
		t.Fatal("an edge without ID is never a duplicate")
	}
	if got := pick(1, "lb:443"); got != "none" {
		t.Fatalf("second leg without a list = %s, want none (target 1)", got)
	}

	// The edge lists three edges (one twice, one without address).
	wake := p.changed()
	p.update([]tunnel.RegionEdge{{EdgeID: "a", ServerAddr: "a:1"}, {EdgeID: "b", ServerAddr: "b:1"}, {EdgeID: "a", ServerAddr: "a:2"},
		{EdgeID: "x"}, {EdgeID: "c", ServerAddr: "c:1"}})
	select {
	case <-wake:
	default:
		t.Fatal("a new list does not wake idle legs")
	}
	if p.target() != 2 || p.count() != 3 {
		t.Fatalf("target %d count %d, want 2 and 3", p.target(), p.count())
	}
	p.release(0, false)
	if got := pick(0, "lb:443"); got != "a" || !p.connected(0, "a", "a:1") {
		t.Fatalf("leg 0 = %s, want a", got)
	}
	// Leg 1 reserves b; leg 0's edge fails: it gets c, the fresh one.
	if got := pick(1, "lb:443"); got != "b" {
		t.Fatalf("leg 1 = %s, want b", got)
	}
	p.release(0, true)
	if got := pick(0, "lb:443"); got != "c" {
		t.Fatalf("leg 0 after a failed = %s, want c", got)
	}
	// Leg 1 lands on c (a balancer): a duplicate, its reservation dropped.
	if p.connected(1, "c", "lb:443") {
		t.Fatal("two legs on c")
	}
	// c fails too: nothing fresh is left; home comes before a, then a
	// and c in the order they failed.
	p.release(0, true)
	now = now.Add(time.Second)
	if got := pick(0, "lb:443"); got != "b" {
		t.Fatalf("leg 0 = %s, want b (fresh)", got)
	}
	p.release(0, true)
	now = now.Add(time.Second)
	if got := pick(0, "lb:443"); got != "home lb:443" {
		t.Fatalf("leg 0 = %s, want home before the failed edges", got)
	}
	p.release(0, false)
	if got := pick(0, "b:1"); got != "a" {
		t.Fatalf("leg 0 with home at b:1 = %s, want a (failed first; home failed too)", got)
	}
	p.release(0, false)
	// After FailMemory every edge is fresh again.
	now = now.Add(FailMemory)
	if got := pick(0, "lb:443"); got != "a" {
		t.Fatalf("after FailMemory = %s, want a", got)
	}
	if !p.connected(0, "a", "a:1") {
		t.Fatal("a refused")
	}
	if got := pick(1, "lb:443"); got != "b" || !p.connected(1, "b", "b:1") {
		t.Fatalf("leg 1 = %s, want b", got)
	}
	if got := p.held(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("held = %v", got)
	}
	// A third leg beyond HAConnections never gets an edge.
	if got := pick(2, "lb:443"); got != "none" {
		t.Fatalf("leg 2 = %s", got)
	}
	if len(p.failed) > 3 {
		t.Fatalf("failures kept: %v", p.failed)
	}
}
