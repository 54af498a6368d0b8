package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/limits"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Unix(1_700_000_000, 0)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newGuardEdge returns an Edge (not listening) with guard config g and
// snapshot data.
func newGuardEdge(t testing.TB, g GuardConfig, data snapshot.Data) *Edge {
	t.Helper()
	e, err := New(Config{BaseDomain: "tollgate.localhost", DisableQUIC: true, AgentAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", HTTPAddr: "off", Guard: g},
		Deps{AgentTLS: &tls.Config{}, Certs: noCerts{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.guard.close)
	setSnapshot(t, e, data)
	return e
}

// TestBasicAuthThrottle: wrong passwords from one address past the budget
// get 429 (TG_3240) even with the right password then, on that endpoint
// only; another address with the right password is admitted at once; a
// request without credentials (a browser's first) is not a failure; one
// refill period later the right password gets in.
func TestBasicAuthThrottle(t *testing.T) {
	clock := newTestClock()
	e := newGuardEdge(t, GuardConfig{BasicAuth: limits.Policy{Burst: 3, Every: 10 * time.Second}, Now: clock.Now}, snapshot.Data{})
	newEP := func(url string) *Endpoint {
		a, err := e.gates.newEndpointAccess(e.snap.Load(), "acct_a", nil, &tunnel.BasicAuth{Credentials: []tunnel.BasicAuthCredential{
			{Username: "alice", CleartextPassword: "correct-horse"}}}, "")
		if err != nil {
			t.Fatal(err)
		}
		return &Endpoint{url: url, access: a}
	}
	ep, other := newEP("https://a.example"), newEP("https://b.example")
	good, bad := basicHeader("alice", "correct-horse"), basicHeader("alice", "wrong-horse")
	attacker, bystander := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.2")
	for i := 0; i < 20; i++ {
		if ad := ep.Admit(attacker, nil, 0); ad.Refusal == nil || ad.Refusal.Status() != 401 {
			t.Fatalf("no credentials, try %d: %+v, want 401", i, ad)
		}
	}
	for i := 0; i < 3; i++ {
		if ad := ep.Admit(attacker, bad, 1); ad.Refusal == nil || ad.Refusal.Status() != 401 {
			t.Fatalf("wrong password %d: %+v, want 401", i, ad)
		}
	}
	for _, auth := range [][]byte{bad, good} {
		ad := ep.Admit(attacker, auth, 1)
		if ad.Refusal == nil || ad.Refusal.Status() != 429 || ad.Refusal.Code() != codes.BasicAuthThrottled {
			t.Fatalf("past the budget: %+v, want 429 TG_3240", ad)
		}
	}
	if ad := ep.Admit(bystander, good, 1); ad.Refusal != nil {
		t.Fatalf("another address with the right password: %+v, want admitted", ad)
	}
	if ad := other.Admit(attacker, good, 1); ad.Refusal != nil {
		t.Fatalf("another endpoint: %+v, want admitted", ad)
	}
	clock.Add(10 * time.Second)
	if ad := ep.Admit(attacker, good, 1); ad.Refusal != nil {
		t.Fatalf("one period later, the right password: %+v, want admitted", ad)
	}
	c := e.Metrics().GuardCounts().BasicAuth
	if c.Failed != 3 || c.Refused != 2 {
		t.Fatalf("counts %+v, want 3 failed, 2 refused", c)
	}
	if n := testing.AllocsPerRun(100, func() { ep.Admit(bystander, good, 1) }); n != 0 {
		t.Errorf("an admitted Admit allocates %v times", n)
	}
	for i := 0; i < 5; i++ {
		ep.Admit(attacker, bad, 1)
	}
	if n := testing.AllocsPerRun(100, func() { ep.Admit(attacker, bad, 1) }); n != 0 {
		t.Errorf("a throttled Admit allocates %v times", n)
	}
}

// TestAgentAuthThrottle: failed authtokens from one address past the
// budget get the retryable TG_3241 even with a valid token, which another
// address presents at once; one refill period later the valid token gets
// in.
func TestAgentAuthThrottle(t *testing.T) {
	clock := newTestClock()
	id, tok, hash := authn.NewCredential(ids.PrefixAuthtoken)
	e := newGuardEdge(t, GuardConfig{AgentAuth: limits.Policy{Burst: 2, Every: time.Minute}, Now: clock.Now}, snapshot.Data{
		Accounts:   []snapshot.Account{{ID: "acct_a", Active: true}},
		Principals: []snapshot.Principal{{ID: "usr_a", Active: true, AccountIDs: []string{"acct_a"}}},
		Authtokens: []snapshot.Authtoken{{ID: id, AccountID: "acct_a", OwnerID: "usr_a", SecretHash: hash}},
	})
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.closeListeners)
	auth := func(remote, token string) string {
		s := newAgentSession(e, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(remote)), "tcp")
		return s.Auth(context.Background(), &tunnel.Auth{Version: []string{"3"}, Extra: tunnel.AuthExtra{Authtoken: tunnel.Secret(token)}}).Error
	}
	// The right credential ID with a wrong secret: refused at once.
	wrong := tok.Reveal()[:len(tok.Reveal())-4] + "AAAA"
	if wrong == tok.Reveal() {
		wrong = tok.Reveal()[:len(tok.Reveal())-4] + "BBBB"
	}
	for i := 0; i < 2; i++ {
		if r := auth("127.0.0.2:5000", wrong); !strings.Contains(r, string(codes.AuthtokenInvalid)) {
			t.Fatalf("wrong token %d: %q, want TG_107", i, r)
		}
	}
	if r := auth("127.0.0.2:5001", tok.Reveal()); !strings.Contains(r, string(codes.AuthThrottled)) {
		t.Fatalf("valid token from the throttled address: %q, want TG_3241", r)
	}
	if r := auth("127.0.0.2:5001", tok.Reveal()); tunnel.ParseRemoteError(r).Permanent() {
		t.Fatal("TG_3241 is permanent; agents must retry it")
	}
	if r := auth("127.0.0.3:5000", tok.Reveal()); r != "" {
		t.Fatalf("valid token from another address: %q", r)
	}
	clock.Add(time.Minute)
	if r := auth("127.0.0.2:5002", tok.Reveal()); r != "" {
		t.Fatalf("valid token one period later: %q", r)
	}
	if c := e.Metrics().GuardCounts().AgentAuth; c.Failed != 2 || c.Refused != 2 {
		t.Fatalf("counts %+v", c)
	}
}

// dialFrom opens a TCP connection to addr from the loopback source src
// (all of 127.0.0.0/8 is loopback on Linux: each acts as one client).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectRefused connects from src to addr and expects the edge to reset
// the connection (during the connect, or at once after it).
func expectRefused(t *testing.T, src, addr string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial from %s: %v, want a reset", src, err)
		}
		return // reset before the dial returned
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("connection from %s not refused: %v", c.LocalAddr(), err)
	}
}

// TestConnCapsLoopback runs an edge whose public listeners allow 2
// connections per client address and 5 in total, and connects from
// several 127.x addresses over the HTTPS and HTTP listeners.
func TestConnCapsLoopback(t *testing.T) {
	e, err := New(Config{BaseDomain: "tollgate.localhost", AgentAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		DisableQUIC: true, Guard: GuardConfig{MaxConns: 5, MaxConnsPerIP: 2}}, Deps{AgentTLS: &tls.Config{}, Certs: noCerts{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	https, http := e.Addrs().HTTPS, e.Addrs().HTTP
	open := func(n int) func() bool { return func() bool { return e.Metrics().GuardCounts().Conns.Open == n } }

	a1 := dialFrom(t, "127.0.0.2", https)
	dialFrom(t, "127.0.0.2", http)
	waitFor(t, "2 connections held", open(2))
	expectRefused(t, "127.0.0.2", https) // third from one client
	dialFrom(t, "127.0.0.3", https)
	dialFrom(t, "127.0.0.3", https)
	dialFrom(t, "127.0.0.4", http)
	waitFor(t, "5 connections held", open(5))
	expectRefused(t, "127.0.0.5", https) // sixth in total
	expectRefused(t, "127.0.0.5", http)
	a1.Close()
	waitFor(t, "a place freed", open(4))
	dialFrom(t, "127.0.0.2", https)
	waitFor(t, "the freed place taken", open(5))
	c := e.Metrics().GuardCounts().Conns
	if c.RefusedPerIP != 1 || c.RefusedTotal != 2 || c.Keys != 3 {
		t.Fatalf("counts %+v, want 1 per-IP and 2 total refusals over 3 clients", c)
	}
}
