package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// TestCheckBindAllowedWildcard: which wildcard endpoints and names under
// reserved wildcard domains an account may bind (docs/wildcard-endpoints.md).
func TestCheckBindAllowedWildcard(t *testing.T) {
	b := &binder{baseDomain: "tollgate.localhost", region: "us"}
	snap, err := snapshot.New(snapshot.Data{ReservedDomains: []snapshot.ReservedDomain{
		{ID: "rd_1", AccountID: "acct_a", Domain: "*.wild.example.com", Region: "us"},
		{ID: "rd_2", AccountID: "acct_b", Domain: "*.other.example.com", Region: "us"},
		{ID: "rd_3", AccountID: "acct_a", Domain: "*.eu.example.com", Region: "eu"},
		{ID: "rd_4", AccountID: "acct_b", Domain: "*.tollgate.localhost", Region: "us"},
		{ID: "rd_5", AccountID: "acct_a", Domain: "*.ci.tollgate.localhost", Region: "us"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := &authn.Identity{Account: &snapshot.Account{ID: "acct_a"}}
	exactOnly := &authn.Identity{Account: &snapshot.Account{ID: "acct_a"}, ACL: []string{"bind:app.wild.example.com"}}
	wildACL := &authn.Identity{Account: &snapshot.Account{ID: "acct_a"}, ACL: []string{"bind:*.wild.example.com"}}
	readme := &authn.Identity{Account: &snapshot.Account{ID: "acct_a"}, ACL: []string{"bind:*.ci.tollgate.localhost"}}
	cases := []struct {
		ident *authn.Identity
		host  string
		code  codes.Code
	}{
		{a, "*.wild.example.com", ""},
		{a, "app.wild.example.com", ""},                    // one label under the reserved wildcard
		{a, "a.b.wild.example.com", codes.BindOutsideBase}, // two labels: not covered
		{a, "*.unreserved.example.com", codes.BindWildcardUnreserved},
		{a, "*.other.example.com", codes.BindReservedOther},
		{a, "x.other.example.com", codes.BindReservedOther},
		{a, "*.eu.example.com", codes.BindRegion},
		{a, "*.tollgate.localhost", codes.BindWildcardBase},
		{a, "x.tollgate.localhost", ""}, // acct_b's *.<base> takes no base name away
		{exactOnly, "*.wild.example.com", codes.BindACL},
		{exactOnly, "other.wild.example.com", codes.BindACL},
		{exactOnly, "app.wild.example.com", ""},
		{wildACL, "*.wild.example.com", ""},
		{wildACL, "pr-1.wild.example.com", ""},
		{readme, "*.ci.tollgate.localhost", ""},
		{readme, "pr-7.ci.tollgate.localhost", ""},
		{readme, "pr-7.tollgate.localhost", codes.BindACL},
	}
	for _, tc := range cases {
		err := b.checkBindAllowed(snap, tc.ident, "https", tc.host)
		if tc.code == "" && err != nil || tc.code != "" && (err == nil || err.Code != tc.code) {
			t.Errorf("%s (acl %v): %v, want %q", tc.host, tc.ident.ACL, err, tc.code)
		}
	}
}

// TestRequestedHostWildcard: a bind URL may name a wildcard; a wildcard
// anywhere but the first label is refused.
func TestRequestedHostWildcard(t *testing.T) {
	got, err := requestedHost(&tunnel.HTTPOptions{URL: "https://*.Wild.example.com"}, "tollgate.localhost")
	if err != nil || got != "*.wild.example.com" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := requestedHost(&tunnel.HTTPOptions{URL: "https://a.*.example.com"}, "tollgate.localhost"); err == nil || err.Code != codes.BindURL {
		t.Fatalf("a.*.example.com: %v, want %s", err, codes.BindURL)
	}
}

// TestRouterWildcardMatch: an exact key beats the wildcard; a wildcard
// covers one label only; unbinding the exact one falls back to the
// wildcard.
func TestRouterWildcardMatch(t *testing.T) {
	r := newRouter()
	wild := &Endpoint{key: "*.example.com", proto: "https"}
	exact := &Endpoint{key: "app.example.com", proto: "https"}
	for _, ep := range []*Endpoint{wild, exact} {
		if _, _, ok := r.bind(ep, nil); !ok {
			t.Fatalf("bind %s refused", ep.key)
		}
	}
	cases := map[string]*Endpoint{
		"app.example.com":   exact,
		"other.example.com": wild,
		"a.b.example.com":   nil,
		"example.com":       nil,
		"*.example.com":     nil, // a request never names the wildcard itself
		"x.example.org":     nil,
	}
	for name, want := range cases {
		got, _ := r.pick(name)
		if got != want {
			t.Errorf("pick(%s) = %v, want %v", name, got, want)
		}
	}
	if got, ok := r.at("*.example.com"); !ok || got != wild {
		t.Errorf("at(*.example.com) = %v", got)
	}
	r.unbind(exact)
	if got, _ := r.pick("app.example.com"); got != wild {
		t.Errorf("after unbinding the exact endpoint: %v, want the wildcard", got)
	}
}

// taggedUpstream answers "<tag> <Host>" on loopback.
func taggedUpstream(t testing.TB, tag string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", tag, r.Host)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// wildcardRegion is a region whose account reserved *.ci.<peerBase>.
func wildcardRegion(t *testing.T) *testRegion {
	r := newTestRegion(t)
	r.data.ReservedDomains = []snapshot.ReservedDomain{{ID: "rd_w", AccountID: "acct_a", Domain: "*.ci." + peerBase, Region: "us"}}
	return r
}

// expectServed GETs https://name<port of addr> through addr over h1 or h2
// and expects body.
func expectServed(t *testing.T, r *testRegion, addr string, h2 bool, name, body string) {
	t.Helper()
	port := addr[strings.LastIndexByte(addr, ':'):]
	code, got, proto := getBody(t, r.httpsClient(addr, "127.0.0.1", h2), "https://"+name+port+"/")
	if code != http.StatusOK || got != body+" "+name+port {
		t.Errorf("%s via %s (%s): %d %q, want %q", name, addr, proto, code, got, body+" "+name+port)
	}
}

// TestWildcardPrecedence: an agent binds https://*.ci.<base>, another
// https://app.ci.<base>. app.ci goes to the exact endpoint, any other name
// one label under ci to the wildcard one (with its own Host), over
// HTTP/1.1 and HTTP/2; a name two labels under gets no certificate.
func TestWildcardPrecedence(t *testing.T) {
	r := wildcardRegion(t)
	e := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	wild := startTestAgent(t, e, r.token)
	url := wild.bind(t, "https", tunnel.HTTPOptions{URL: "https://*.ci." + peerBase}, taggedUpstream(t, "wildcard"))
	if !strings.HasPrefix(url, "https://*.ci."+peerBase) {
		t.Fatalf("bound %s", url)
	}
	exact := startTestAgent(t, e, r.token)
	exact.bind(t, "https", tunnel.HTTPOptions{URL: "https://app.ci." + peerBase}, taggedUpstream(t, "exact"))
	addr := e.Addrs().HTTPS
	for _, h2 := range []bool{false, true} {
		expectServed(t, r, addr, h2, "app.ci."+peerBase, "exact")
		expectServed(t, r, addr, h2, "pr-1.ci."+peerBase, "wildcard")
		expectServed(t, r, addr, h2, "pr-2.ci."+peerBase, "wildcard")
	}
	c := r.httpsClient(addr, "127.0.0.1", false)
	if resp, err := c.Get("https://a.b.ci." + peerBase + addr[strings.LastIndexByte(addr, ':'):] + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("a.b.ci.%s answered %s: a wildcard covers one label", peerBase, resp.Status)
	}
}

// TestWildcardPrecedenceAcrossEdges: the wildcard endpoint's agent is on
// edge A, the exact one's on edge B. Each edge serves both names: the
// exact route on a sibling beats a local wildcard, and a name only the
// sibling's wildcard covers is forwarded to it.
func TestWildcardPrecedenceAcrossEdges(t *testing.T) {
	r := wildcardRegion(t)
	a := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	b := r.startEdge("ed_b", "127.0.0.2", peerSecret)
	startTestAgent(t, a, r.token).bind(t, "https", tunnel.HTTPOptions{URL: "https://*.ci." + peerBase}, taggedUpstream(t, "wildcard"))
	startTestAgent(t, b, r.token).bind(t, "https", tunnel.HTTPOptions{URL: "https://app.ci." + peerBase}, taggedUpstream(t, "exact"))
	for _, e := range []*Edge{a, b} {
		for _, h2 := range []bool{false, true} {
			expectServed(t, r, e.Addrs().HTTPS, h2, "app.ci."+peerBase, "exact")
			expectServed(t, r, e.Addrs().HTTPS, h2, "pr-1.ci."+peerBase, "wildcard")
		}
	}
}

// TestWildcardBindNeedsACL: through a real agent session, an authtoken
// whose ACL names only app.ci.<base> is refused the wildcard endpoint
// (TG_619) though its account reserved the wildcard domain, and may still
// bind its one name; a token without ACL binds the wildcard.
func TestWildcardBindNeedsACL(t *testing.T) {
	r := wildcardRegion(t)
	id, tok, hash := authn.NewCredential(ids.PrefixAuthtoken)
	r.data.Authtokens = append(r.data.Authtokens, snapshot.Authtoken{ID: id, AccountID: "acct_a", OwnerID: "usr_a", SecretHash: hash,
		ACL: []string{"bind:app.ci." + peerBase}})
	e := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	cs, _ := connectAgent(t, e, tok.Reveal())
	bind := func(url string) string {
		raw, _ := json.Marshal(tunnel.HTTPOptions{URL: url})
		resp, err := cs.Bind(context.Background(), &tunnel.Bind{Proto: "https", Opts: raw})
		if err != nil {
			return err.Error()
		}
		return resp.Error
	}
	if msg := bind("https://*.ci." + peerBase); !strings.Contains(msg, string(codes.BindACL)) {
		t.Fatalf("wildcard bind with an exact-name ACL: %q, want %s", msg, codes.BindACL)
	}
	if msg := bind("https://app.ci." + peerBase); msg != "" {
		t.Fatalf("exact bind: %s", msg)
	}
	if _, ok := e.router.at("*.ci." + peerBase); ok {
		t.Fatal("the refused wildcard is routed")
	}
	startTestAgent(t, e, r.token).bind(t, "https", tunnel.HTTPOptions{URL: "https://*.ci." + peerBase}, taggedUpstream(t, "wildcard"))
}

// TestWildcardTLSPassthrough: a tls endpoint bound at tls://*.ci.<base> is
// routed by the TLS server name: a name one label under it reaches its
// upstream (which holds the wildcard certificate), while an exact tls
// endpoint on another edge keeps its own name.
func TestWildcardTLSPassthrough(t *testing.T) {
	r := wildcardRegion(t)
	a := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	b := r.startEdge("ed_b", "127.0.0.2", peerSecret)
	upstream := func(names ...string) (string, *x509.Certificate) {
		cert, err := r.ca.IssueServerCert(names, nil)
		if err != nil {
			t.Fatal(err)
		}
		return echoUpstream(t, func(c net.Conn) net.Conn {
			return tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		}), cert.Leaf
	}
	wildUp, wildLeaf := upstream("*.ci." + peerBase)
	exactUp, exactLeaf := upstream("db.ci." + peerBase)
	startTestAgent(t, a, r.token).bind(t, "tls", tunnel.TLSOptions{URL: "tls://*.ci." + peerBase}, wildUp)
	startTestAgent(t, b, r.token).bind(t, "tls", tunnel.TLSOptions{URL: "tls://db.ci." + peerBase}, exactUp)
	for _, e := range []*Edge{a, b} {
		for name, leaf := range map[string]*x509.Certificate{"pr-1.ci." + peerBase: wildLeaf, "db.ci." + peerBase: exactLeaf} {
			tc, err := tls.Dial("tcp", e.Addrs().HTTPS, &tls.Config{ServerName: name, RootCAs: r.caPool})
			if err != nil {
				t.Fatalf("%s via %s: %v", name, e.cfg.EdgeID, err)
			}
			if sn := tc.ConnectionState().PeerCertificates[0].SerialNumber; sn.Cmp(leaf.SerialNumber) != 0 {
				t.Errorf("%s via %s reached the wrong upstream", name, e.cfg.EdgeID)
			}
			expectEcho(t, tc, "over tls")
		}
	}
}
