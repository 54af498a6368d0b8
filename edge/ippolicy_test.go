package edge

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// newPolicyEdge returns an Edge (not listening) whose current snapshot is
// data with revision 1.
func newPolicyEdge(t testing.TB, data snapshot.Data) *Edge {
	t.Helper()
	e, err := New(Config{BaseDomain: "tollgate.localhost", DisableQUIC: true, AgentAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", HTTPAddr: "off"},
		Deps{AgentTLS: &tls.Config{}, Certs: noCerts{}})
	if err != nil {
		t.Fatal(err)
	}
	setSnapshot(t, e, data)
	return e
}

// setSnapshot installs data as the edge's next snapshot and applies it.
func setSnapshot(t testing.TB, e *Edge, data snapshot.Data) {
	t.Helper()
	data.Revision = e.snap.Load().Revision() + 1
	snap, err := snapshot.New(data)
	if err != nil {
		t.Fatal(err)
	}
	if ok := e.snap.swap(snap); !ok {
		t.Fatalf("snapshot not installed: %v", err)
	}
	e.enforce(snap)
}

func testPolicy(id, acct string, rules ...string) snapshot.IPPolicy {
	p := snapshot.IPPolicy{ID: id, AccountID: acct}
	for i, r := range rules {
		action, cidr, _ := strings.Cut(r, " ")
		p.Rules = append(p.Rules, snapshot.IPPolicyRule{ID: fmt.Sprintf("ipr_%s_%d", id, i), CIDR: cidr, Action: action})
	}
	return p
}

func TestEndpointAccessValidation(t *testing.T) {
	e := newPolicyEdge(t, snapshot.Data{IPPolicies: []snapshot.IPPolicy{
		testPolicy("ipp_allow", "acct_a", "allow 10.0.0.0/8"),
		testPolicy("ipp_deny", "acct_a", "deny 10.1.0.0/16"),
		testPolicy("ipp_empty", "acct_a"),
		testPolicy("ipp_other", "acct_b", "allow 0.0.0.0/0"),
	}})
	snap := e.snap.Load()
	cred := func(u, p string) tunnel.BasicAuthCredential {
		return tunnel.BasicAuthCredential{Username: u, CleartextPassword: tunnel.Secret(p)}
	}
	many := &tunnel.BasicAuth{}
	for i := range 11 {
		many.Credentials = append(many.Credentials, cred(fmt.Sprint("u", i), "password-1"))
	}
	cases := []struct {
		name   string
		ipr    *tunnel.IPRestriction
		ba     *tunnel.BasicAuth
		legacy string
		code   codes.Code
		want   string // in the message
	}{
		{name: "none"},
		{name: "empty restriction", ipr: &tunnel.IPRestriction{}},
		{name: "allow", ipr: &tunnel.IPRestriction{AllowCIDRs: []string{"10.0.0.0/8", "::/0"}}},
		{name: "allow and deny", ipr: &tunnel.IPRestriction{AllowCIDRs: []string{"0.0.0.0/0"}, DenyCIDRs: []string{"10.0.0.1"}}},
		{name: "deny only", ipr: &tunnel.IPRestriction{DenyCIDRs: []string{"10.0.0.0/8"}}, code: codes.BindDenyOnly,
			want: "add 0.0.0.0/0 and ::/0 to allow everything not denied"},
		{name: "deny and deny-only policy", ipr: &tunnel.IPRestriction{DenyCIDRs: []string{"10.0.0.0/8"}, IPPolicyIDs: []string{"ipp_deny"}},
			code: codes.BindDenyOnly, want: "ipp_deny"},
		{name: "empty policy", ipr: &tunnel.IPRestriction{IPPolicyIDs: []string{"ipp_empty"}}, code: codes.BindDenyOnly},
		{name: "deny with allow policy", ipr: &tunnel.IPRestriction{DenyCIDRs: []string{"10.0.0.0/24"}, IPPolicyIDs: []string{"ipp_allow"}}},
		{name: "bad cidr", ipr: &tunnel.IPRestriction{AllowCIDRs: []string{"10.0.0.0/33"}}, code: codes.BindOption, want: "--cidr-allow"},
		{name: "host bits", ipr: &tunnel.IPRestriction{AllowCIDRs: []string{"0.0.0.0/0"}, DenyCIDRs: []string{"10.1.2.3/8"}},
			code: codes.BindOption, want: "use 10.0.0.0/8"},
		{name: "unknown policy", ipr: &tunnel.IPRestriction{IPPolicyIDs: []string{"ipp_nope"}}, code: codes.IPPolicyIDs},
		{name: "other account's policy", ipr: &tunnel.IPRestriction{IPPolicyIDs: []string{"ipp_other"}}, code: codes.IPPolicyIDs},
		{name: "basic auth", ba: &tunnel.BasicAuth{Credentials: []tunnel.BasicAuthCredential{cred("alice", "correct-horse")}}},
		{name: "legacy auth", legacy: "bob:battery-staple"},
		{name: "legacy auth malformed", legacy: "bob", code: codes.BasicAuthPassword},
		{name: "empty user", ba: &tunnel.BasicAuth{Credentials: []tunnel.BasicAuthCredential{cred("", "correct-horse")}}, code: codes.BasicAuthUser},
		{name: "colon in user", ba: &tunnel.BasicAuth{Credentials: []tunnel.BasicAuthCredential{cred("a:b", "correct-horse")}}, code: codes.BasicAuthUser},
		{name: "long user", ba: &tunnel.BasicAuth{Credentials: []tunnel.BasicAuthCredential{cred(strings.Repeat("u", 129), "correct-horse")}}, code: codes.BasicAuthUser},
		{name: "short password", ba: &tunnel.BasicAuth{Credentials: []tunnel.BasicAuthCredential{cred("alice", "seven77")}}, code: codes.BasicAuthPassword,
			want: "8 to 128"},
		{name: "8 multibyte characters", ba: &tunnel.BasicAuth{Credentials: []tunnel.BasicAuthCredential{cred("alice", "äöüßäöüß")}}},
		{name: "long password", ba: &tunnel.BasicAuth{Credentials: []tunnel.BasicAuthCredential{cred("alice", strings.Repeat("p", 129))}}, code: codes.BasicAuthPassword},
		{name: "control character", ba: &tunnel.BasicAuth{Credentials: []tunnel.BasicAuthCredential{cred("alice", "pass\nword1")}}, code: codes.BasicAuthPassword},
		{name: "too many", ba: many, code: codes.BindOption},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := e.gates.newEndpointAccess(snap, "acct_a", tc.ipr, tc.ba, tc.legacy)
			if tc.code == "" {
				if err != nil || a == nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Code != tc.code || !strings.Contains(err.Message, tc.want) {
				t.Fatalf("err = %v, want %s with %q", err, tc.code, tc.want)
			}
			if tc.ba != nil {
				for _, c := range tc.ba.Credentials {
					if p := c.CleartextPassword.Reveal(); len(p) > 3 && strings.Contains(err.Error(), p) {
						t.Fatalf("the error echoes a password: %v", err)
					}
				}
			}
		})
	}
}

// TestAdmitIP: the account's endpoints restriction (enforced or not) and
// the endpoint's own policy, IPv4, IPv6 and IPv4-mapped IPv6.
func TestAdmitIP(t *testing.T) {
	e := newPolicyEdge(t, snapshot.Data{
		IPPolicies: []snapshot.IPPolicy{
			testPolicy("ipp_a", "acct_a", "allow 127.0.0.0/8", "allow ::1/128", "deny 127.0.0.3/32"),
			testPolicy("ipp_b", "acct_b", "allow 10.0.0.0/8"),
		},
		IPRestrictions: []snapshot.IPRestriction{
			{ID: "ipx_a", AccountID: "acct_a", Type: "endpoints", Enforced: true, IPPolicyIDs: []string{"ipp_a"}},
			{ID: "ipx_b", AccountID: "acct_b", Type: "endpoints", Enforced: false, IPPolicyIDs: []string{"ipp_b"}},
			{ID: "ipx_agent", AccountID: "acct_a", Type: "agent", Enforced: true, IPPolicyIDs: []string{"ipp_b"}},
		},
	})
	snap := e.snap.Load()
	mk := func(acct string, ipr *tunnel.IPRestriction) *Endpoint {
		a, err := e.gates.newEndpointAccess(snap, acct, ipr, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		return &Endpoint{url: "https://x." + acct, access: a}
	}
	plainA := mk("acct_a", nil)
	ownA := mk("acct_a", &tunnel.IPRestriction{AllowCIDRs: []string{"127.0.0.1/32", "::/0"}, DenyCIDRs: []string{"::1/128"}})
	plainB := mk("acct_b", nil)
	ownB := mk("acct_b", &tunnel.IPRestriction{AllowCIDRs: []string{"127.0.0.2"}})
	plainC := mk("acct_c", nil)
	cases := []struct {
		ep   *Endpoint
		addr string
		ok   bool
	}{
		{plainA, "127.0.0.1", true},
		{plainA, "127.0.0.3", false}, // deny wins inside the allowed /8
		{plainA, "::ffff:127.0.0.3", false},
		{plainA, "::ffff:127.0.0.2", true},
		{plainA, "::1", true},
		{plainA, "2001:db8::1", false},
		{plainA, "10.0.0.1", false},
		{ownA, "127.0.0.1", true},
		{ownA, "::ffff:127.0.0.1", true},
		{ownA, "127.0.0.2", false}, // the restriction admits it, the endpoint does not
		{ownA, "::1", false},
		{plainB, "127.0.0.1", true}, // unenforced: let through
		{ownB, "127.0.0.2", true},
		{ownB, "::ffff:127.0.0.2", true},
		{ownB, "127.0.0.1", false}, // the endpoint's own policy is always enforced
		{plainC, "192.0.2.1", true},
	}
	for _, tc := range cases {
		if got := e.gates.admit(tc.ep, netip.MustParseAddr(tc.addr)); got != tc.ok {
			t.Errorf("%s from %s: admitted %v, want %v", tc.ep.url, tc.addr, got, tc.ok)
		}
	}
	c := e.Metrics().IPPolicyCounts()
	if c.EndpointsRefused != 4 || c.EndpointRefused != 3 || c.DryRun != 4 {
		t.Fatalf("counts %+v", c)
	}
	// The agent surface is separate from the endpoints surface.
	if err := e.CheckAgentIP("acct_a", netip.MustParseAddr("::ffff:10.1.2.3"), e.log); err != nil {
		t.Fatalf("agent from 10.1.2.3 refused: %v", err)
	}
	if err := e.CheckAgentIP("acct_a", netip.MustParseAddr("127.0.0.1"), e.log); err == nil || err.Code != codes.AgentIPRestricted {
		t.Fatalf("agent from 127.0.0.1: %v, want TG_115", err)
	}
}

// TestAdmitIPFollowsSnapshot: a new snapshot changes the account's
// restrictions and the rules of the IP policies an endpoint names, without
// rebinding.
func TestAdmitIPFollowsSnapshot(t *testing.T) {
	data := snapshot.Data{IPPolicies: []snapshot.IPPolicy{testPolicy("ipp_a", "acct_a", "allow 127.0.0.0/8")}}
	e := newPolicyEdge(t, data)
	a, err := e.gates.newEndpointAccess(e.snap.Load(), "acct_a", &tunnel.IPRestriction{IPPolicyIDs: []string{"ipp_a"}}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	ep := &Endpoint{url: "tcp://x", access: a}
	addr := netip.MustParseAddr("127.0.0.2")
	if !e.gates.admit(ep, addr) {
		t.Fatal("refused before the change")
	}
	data.IPPolicies = []snapshot.IPPolicy{testPolicy("ipp_a", "acct_a", "allow 127.0.0.0/8", "deny 127.0.0.2/32")}
	setSnapshot(t, e, data)
	if e.gates.admit(ep, addr) {
		t.Fatal("the policy's new deny rule was not applied")
	}
	data.IPPolicies = []snapshot.IPPolicy{testPolicy("ipp_a", "acct_a", "allow 127.0.0.0/8"), testPolicy("ipp_r", "acct_a", "allow 10.0.0.0/8")}
	data.IPRestrictions = []snapshot.IPRestriction{{ID: "ipx_1", AccountID: "acct_a", Type: "endpoints", Enforced: true, IPPolicyIDs: []string{"ipp_r"}}}
	// Swap without enforce: the first check compiles the new
	// restrictions itself.
	data.Revision = e.snap.Load().Revision() + 1
	snap, _ := snapshot.New(data)
	if ok := e.snap.swap(snap); !ok {
		t.Fatal("not swapped")
	}
	if e.gates.admit(ep, addr) {
		t.Fatal("the new endpoints restriction was not applied")
	}
	// A control plane reset hands an older revision; it is the truth then
	// (snapshotHolder.watch stores it as is), and it is compiled once.
	data.IPRestrictions = nil
	data.Revision = 1
	older, _ := snapshot.New(data)
	e.snap.cur.Store(older)
	e.enforce(older)
	if !e.gates.admit(ep, netip.MustParseAddr("127.0.0.3")) {
		t.Fatal("the restriction of the newer, abandoned snapshot still applies")
	}
	if r1, r2 := e.gates.restrictions(), e.gates.restrictions(); r1 != r2 {
		t.Fatal("the restrictions of the current snapshot are compiled on every check")
	}
}

func basicHeader(user, pass string) []byte {
	return []byte("Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
}

func TestBasicAuthAdmit(t *testing.T) {
	e := newPolicyEdge(t, snapshot.Data{})
	a, err := e.gates.newEndpointAccess(e.snap.Load(), "acct_a", nil, &tunnel.BasicAuth{Credentials: []tunnel.BasicAuthCredential{
		{Username: "alice", CleartextPassword: "correct-horse"}, {Username: "bob", CleartextPassword: "battery:staple"},
	}}, "")
	if err != nil {
		t.Fatal(err)
	}
	ep := &Endpoint{url: "https://x", access: a}
	client := netip.MustParseAddr("127.0.0.1")
	cases := []struct {
		name  string
		auth  []byte
		count int
		ok    bool
	}{
		{"alice", basicHeader("alice", "correct-horse"), 1, true},
		{"bob, colon in password", basicHeader("bob", "battery:staple"), 1, true},
		{"scheme case", append([]byte("bASIC"), basicHeader("alice", "correct-horse")[5:]...), 1, true},
		{"wrong password", basicHeader("alice", "correct-horsE"), 1, false},
		{"other user's password", basicHeader("alice", "battery:staple"), 1, false},
		{"unknown user", basicHeader("carol", "correct-horse"), 1, false},
		{"missing", nil, 0, false},
		{"two fields", basicHeader("alice", "correct-horse"), 2, false},
		{"bearer", []byte("Bearer abc"), 1, false},
		{"no colon", []byte("Basic " + base64.StdEncoding.EncodeToString([]byte("alice"))), 1, false},
		{"bad base64", []byte("Basic !!!"), 1, false},
		{"huge", []byte("Basic " + strings.Repeat("QUFB", 2000)), 1, false},
	}
	for _, tc := range cases {
		ad := ep.Admit(client, tc.auth, tc.count)
		if tc.ok && (ad.Refusal != nil || !ad.StripAuthorization) {
			t.Errorf("%s: %+v, want admitted with the Authorization stripped", tc.name, ad)
		}
		if !tc.ok && (ad.Refusal == nil || ad.Refusal.Status() != 401 || ad.Refusal.Code() != codes.BasicAuthRequired) {
			t.Errorf("%s: %+v, want 401 TG_3207", tc.name, ad)
		}
	}
	if got := e.Metrics().IPPolicyCounts().BasicAuthFailed; got != 9 {
		t.Errorf("BasicAuthFailed = %d, want 9", got)
	}
	// IP policy comes first: a refused address gets 403 even with the
	// right password.
	a2, err := e.gates.newEndpointAccess(e.snap.Load(), "acct_a", &tunnel.IPRestriction{AllowCIDRs: []string{"10.0.0.0/8"}},
		&tunnel.BasicAuth{Credentials: []tunnel.BasicAuthCredential{{Username: "alice", CleartextPassword: "correct-horse"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	ad := (&Endpoint{access: a2}).Admit(client, basicHeader("alice", "correct-horse"), 1)
	if ad.Refusal == nil || ad.Refusal.Status() != 403 || ad.Refusal.Code() != codes.IPDenied {
		t.Fatalf("%+v, want 403 TG_3205", ad)
	}
	good, bad := basicHeader("alice", "correct-horse"), basicHeader("alice", "wrong-horse")
	if n := testing.AllocsPerRun(100, func() { ep.Admit(client, bad, 1) }); n != 0 {
		t.Errorf("a refused Admit allocates %v times", n)
	}
	// From another address: this one is throttled by now (guard.go).
	other := netip.MustParseAddr("127.0.0.9")
	if n := testing.AllocsPerRun(100, func() { ep.Admit(other, good, 1) }); n != 0 {
		t.Errorf("an admitted Admit allocates %v times", n)
	}
}

// TestBindHTTPAccessOptions runs binds through bindHTTP and bindTCP: the
// options reach the endpoint, deny-only lists are refused, and the options
// echoed to the agent hold no password.
func TestBindHTTPAccessOptions(t *testing.T) {
	e := newPolicyEdge(t, snapshot.Data{})
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.closeListeners)
	ident := &authn.Identity{Account: &snapshot.Account{ID: "acct_a"}}
	bind := func(proto, opts string) (*Endpoint, any, *codes.Error) {
		req := &tunnel.Bind{Proto: proto, Opts: json.RawMessage(opts)}
		switch proto {
		case "tcp":
			return e.binds.bindTCP(req, ident, &agentSession{})
		case "tls":
			return e.binds.bindTLS(req, ident, &agentSession{})
		}
		return e.binds.bindHTTP(req, ident, &agentSession{})
	}
	ep, echo, err := bind("https", `{"IPRestriction":{"allow_cidrs":["127.0.0.1/32"]},"BasicAuth":{"credentials":[{"username":"alice","cleartext_password":"correct-horse"}]}}`)
	if err != nil {
		t.Fatal(err)
	}
	if ep.access == nil || ep.access.basic == nil || ep.access.matcher(e.snap.Load()) == nil || ep.access.accountID != "acct_a" {
		t.Fatalf("access %+v", ep.access)
	}
	if b, _ := json.Marshal(echo); strings.Contains(string(b), "correct-horse") {
		t.Fatalf("the bind answer echoes the password: %s", b)
	}
	for _, proto := range []string{"https", "tcp", "tls"} {
		_, _, err := bind(proto, `{"IPRestriction":{"deny_cidrs":["10.0.0.0/8"]}}`)
		if err == nil || err.Code != codes.BindDenyOnly {
			t.Errorf("%s deny-only: %v, want TG_393", proto, err)
		}
		ep, _, err := bind(proto, `{"IPRestriction":{"allow_cidrs":["0.0.0.0/0"],"deny_cidrs":["10.0.0.0/8"]}}`)
		if err != nil {
			t.Errorf("%s allow and deny: %v", proto, err)
			continue
		}
		if e.gates.admit(ep, netip.MustParseAddr("10.1.1.1")) || !e.gates.admit(ep, netip.MustParseAddr("192.0.2.1")) {
			t.Errorf("%s: the endpoint's CIDRs are not applied", proto)
		}
		if ep.release != nil {
			ep.release()
		}
	}
}

// fakeOwner is an endpoint owner that counts proxy streams and opens none.
type fakeOwner struct{ opened atomic.Int64 }

func (o *fakeOwner) Identity() *authn.Identity { return nil }
func (o *fakeOwner) OpenProxy(context.Context, *tunnel.ProxyHeader) (httpproxy.Stream, error) {
	o.opened.Add(1)
	return nil, errors.New("no agent in this test")
}
func (o *fakeOwner) DropEndpoint(*Endpoint, codes.Code, string) {}

// mappedListener listens on ::ffff:127.0.0.1 with an IPv6 socket that
// takes IPv4 connections (IPV6_V6ONLY off), so peers appear as IPv4-mapped
// IPv6 addresses, as on a dual-stack wildcard listener, yet only loopback
// is reachable. Go's net.Listen would pick an IPv4 socket for that
// address, so the socket is made by hand.
func mappedListener(t *testing.T) net.Listener {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("this test needs IPv6 sockets (an IPv4-mapped loopback listener): %v", err)
	}
	sa := &syscall.SockaddrInet6{Addr: netip.MustParseAddr("::ffff:127.0.0.1").As16()}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0); err != nil {
		syscall.Close(fd)
		t.Fatalf("this test needs dual-stack IPv6 sockets: %v", err)
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		t.Fatalf("binding ::ffff:127.0.0.1: %v", err)
	}
	if err := syscall.Listen(fd, 16); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "mapped-listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestTCPRefusedBeforeAgent: a TCP client the policy refuses is closed
// without a proxy stream being opened, also when its address arrives as
// IPv4-mapped IPv6 from a dual-stack socket.
func TestTCPRefusedBeforeAgent(t *testing.T) {
	e := newPolicyEdge(t, snapshot.Data{})
	a, err := e.gates.newEndpointAccess(e.snap.Load(), "acct_a", &tunnel.IPRestriction{AllowCIDRs: []string{"127.0.0.0/8"}, DenyCIDRs: []string{"127.0.0.2/32"}}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	owner := &fakeOwner{}
	ep := &Endpoint{key: "localhost:1", url: "tcp://localhost:1", proto: "tcp", session: owner, access: a}
	if _, _, ok := e.router.bind(ep, nil); !ok {
		t.Fatal("bind")
	}
	for _, mapped := range []bool{false, true} {
		t.Run(fmt.Sprint("mapped=", mapped), func(t *testing.T) {
			var ln net.Listener
			if mapped {
				ln = mappedListener(t)
			} else {
				var err error
				if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
			}
			port := ln.Addr().(*net.TCPAddr).Port
			for _, src := range []struct {
				ip      string
				allowed bool
			}{{"127.0.0.2", false}, {"127.0.0.1", true}} {
				before := owner.opened.Load()
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src.ip)}, Timeout: 5 * time.Second}
				c, err := d.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					t.Fatal(err)
				}
				sc, err := ln.Accept()
				if err != nil {
					t.Fatal(err)
				}
				if peer := sc.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(); peer.Is4In6() != mapped {
					t.Fatalf("server sees %v; mapped=%v", peer, mapped)
				}
				done := make(chan struct{})
				go func() { e.public.handleTCP(sc, "localhost:1"); close(done) }()
				_, _ = c.Write([]byte("hello"))
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, rerr := io.ReadAll(c)
				c.Close()
				<-done
				var ne net.Error
				if errors.As(rerr, &ne) && ne.Timeout() {
					t.Fatalf("from %s: the connection was not closed", src.ip)
				}
				opened := owner.opened.Load() - before
				if src.allowed && opened != 1 || !src.allowed && opened != 0 {
					t.Fatalf("from %s: %d proxy streams opened, allowed=%v", src.ip, opened, src.allowed)
				}
			}
		})
	}
}

// TestAgentAuthIPRestricted: Auth refuses an agent whose source address
// the account's agent restriction refuses, with TG_115; an unenforced one
// lets it in and counts.
func TestAgentAuthIPRestricted(t *testing.T) {
	id, tok, hash := authn.NewCredential(ids.PrefixAuthtoken)
	data := snapshot.Data{
		Accounts:   []snapshot.Account{{ID: "acct_a", Active: true}},
		Principals: []snapshot.Principal{{ID: "usr_a", Active: true, AccountIDs: []string{"acct_a"}}},
		Authtokens: []snapshot.Authtoken{{ID: id, AccountID: "acct_a", OwnerID: "usr_a", SecretHash: hash}},
		IPPolicies: []snapshot.IPPolicy{testPolicy("ipp_a", "acct_a", "allow 127.0.0.1/32")},
		IPRestrictions: []snapshot.IPRestriction{
			{ID: "ipx_a", AccountID: "acct_a", Type: "agent", Enforced: true, IPPolicyIDs: []string{"ipp_a"}},
		},
	}
	e := newPolicyEdge(t, data)
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.closeListeners)
	auth := func(remote string) *tunnel.AuthResp {
		s := newAgentSession(e, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(remote)), "tcp")
		return s.Auth(context.Background(), &tunnel.Auth{Version: []string{"3"}, Extra: tunnel.AuthExtra{Authtoken: tunnel.Secret(tok.Reveal())}})
	}
	if r := auth("[::ffff:127.0.0.2]:5000"); !strings.Contains(r.Error, string(codes.AgentIPRestricted)) || !strings.Contains(r.Error, "127.0.0.2") {
		t.Fatalf("from 127.0.0.2: %q, want TG_115", r.Error)
	}
	if r := auth("127.0.0.1:5000"); r.Error != "" {
		t.Fatalf("from 127.0.0.1: %q", r.Error)
	}
	data.IPRestrictions[0].Enforced = false
	setSnapshot(t, e, data)
	if r := auth("127.0.0.2:5000"); r.Error != "" {
		t.Fatalf("unenforced, from 127.0.0.2: %q", r.Error)
	}
	if c := e.Metrics().IPPolicyCounts(); c.AgentRefused != 1 || c.DryRun != 1 {
		t.Fatalf("counts %+v", c)
	}
}
