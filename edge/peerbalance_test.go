package edge

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/tunnel"
)

// poolURL returns url with the port of edge e's public HTTPS listener.
func poolURL(e *Edge, url string) string {
	host := strings.Split(strings.TrimPrefix(url, "https://"), ":")[0]
	return "https://" + host + e.Addrs().HTTPS[strings.LastIndexByte(e.Addrs().HTTPS, ':'):] + "/"
}

// TestForwardBalancesRemoteHolders: a pool whose members are on two other
// edges of the region is balanced by the edge that has none: connections
// alternate between the siblings, not all to the first one the table
// lists.
func TestForwardBalancesRemoteHolders(t *testing.T) {
	r := newTestRegion(t)
	front := r.startEdge("ed_front", "127.0.0.1", peerSecret)
	b := r.startEdge("ed_b", "127.0.0.2", peerSecret)
	c := r.startEdge("ed_c", "127.0.0.4", peerSecret)
	opts := tunnel.HTTPOptions{URL: "https://spread." + peerBase}
	url := startTestAgent(t, b, r.token).bindPooled(t, "https", opts, nameUpstream(t, "on-b"))
	startTestAgent(t, c, r.token).bindPooled(t, "https", opts, nameUpstream(t, "on-c"))
	url = poolURL(front, url)

	client := r.poolClient(front.Addrs().HTTPS, false)
	seen := map[string]int{}
	for i := range 6 {
		who, err := poolGet(client, url)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		seen[who]++
	}
	if seen["on-b"] != 3 || seen["on-c"] != 3 {
		t.Fatalf("requests per sibling: %v, want 3 each", seen)
	}
}

// TestForwardSkipsFailedSibling: a holder whose link cannot be dialled is
// tried once; while the failure is recent, connections go to the holders
// that work first, so they do not pay for the dead one each time.
func TestForwardSkipsFailedSibling(t *testing.T) {
	r := newTestRegion(t)
	front := r.startEdge("ed_front", "127.0.0.1", peerSecret)
	b := r.startEdge("ed_b", "127.0.0.2", peerSecret)
	url := startTestAgent(t, b, r.token).bind(t, "https", tunnel.HTTPOptions{URL: "https://skip." + peerBase}, nameUpstream(t, "on-b"))
	// A sibling that is gone: its address refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.5:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r.lie("skip."+peerBase, RemoteRoute{EdgeID: "ed_gone", PeerAddr: dead}, RemoteRoute{EdgeID: "ed_b", PeerAddr: b.Addrs().Peer})
	url = poolURL(front, url)

	client := r.poolClient(front.Addrs().HTTPS, false)
	for i := range 6 {
		who, err := poolGet(client, url)
		if err != nil || who != "on-b" {
			t.Fatalf("request %d: %q %v", i, who, err)
		}
	}
	if n := front.peers.metrics.linkFailed.Load(); n != 1 {
		t.Errorf("forward attempts to the dead sibling: %d, want 1", n)
	}
}

// TestPeerLinkNoticesSilentSibling: a sibling that stops answering on an
// idle link without closing it (the path to it is cut) is noticed by the
// link's own pings, with no forwarded connection to time out: the link is
// dropped and the sibling is offered connections last from then on.
func TestPeerLinkNoticesSilentSibling(t *testing.T) {
	r := newTestRegion(t)
	front := r.startEdge("ed_front", "127.0.0.1", peerSecret)
	b := r.startEdge("ed_b", "127.0.0.2", peerSecret)
	url := startTestAgent(t, b, r.token).bind(t, "https", tunnel.HTTPOptions{URL: "https://cut." + peerBase}, nameUpstream(t, "on-b"))
	gate := newStallGate(t)
	relay := gatedRelay(t, gate, b.Addrs().Peer)
	r.lie("cut."+peerBase, RemoteRoute{EdgeID: "ed_b", PeerAddr: relay})
	url = poolURL(front, url)

	if who, err := poolGet(r.poolClient(front.Addrs().HTTPS, false), url); err != nil || who != "on-b" {
		t.Fatalf("through the relay: %q %v", who, err)
	}
	gate.stall(t)
	waitForLong(t, "the link to the silent sibling to be dropped", func() bool {
		return front.peers.links.failedRecently(relay)
	})
}

// gatedRelay listens on loopback and relays each connection to target
// through g; it returns its address.
func gatedRelay(t *testing.T, g *stallGate, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); u.Close() })
			go g.copyThrough(u, c)
			go g.copyThrough(c, u)
		}
	}()
	return ln.Addr().String()
}

// waitForLong polls cond until it holds or 30 s pass.
func waitForLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
