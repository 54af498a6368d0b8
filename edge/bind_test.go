package edge

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

func TestRequestedHost(t *testing.T) {
	const base = "tollgate.localhost"
	cases := []struct {
		opts tunnel.HTTPOptions
		want string
		code codes.Code
	}{
		{tunnel.HTTPOptions{}, "", ""},
		{tunnel.HTTPOptions{URL: "https://App.tollgate.localhost"}, "app.tollgate.localhost", ""},
		{tunnel.HTTPOptions{URL: "https://app.tollgate.localhost:8443/"}, "app.tollgate.localhost", ""},
		{tunnel.HTTPOptions{Domain: "x.tollgate.localhost."}, "x.tollgate.localhost", ""},
		{tunnel.HTTPOptions{Hostname: "h.tollgate.localhost"}, "h.tollgate.localhost", ""},
		{tunnel.HTTPOptions{Subdomain: "sub"}, "sub.tollgate.localhost", ""},
		{tunnel.HTTPOptions{Domain: "bücher.tollgate.localhost"}, "xn--bcher-kva.tollgate.localhost", ""},
		{tunnel.HTTPOptions{URL: "https://"}, "", codes.BindURL},
		{tunnel.HTTPOptions{URL: "ftp://a.tollgate.localhost"}, "", codes.BindURL},
		{tunnel.HTTPOptions{URL: "https://a.tollgate.localhost/path"}, "", codes.BindURL},
		{tunnel.HTTPOptions{URL: "https://u:p@a.tollgate.localhost"}, "", codes.BindURL},
		{tunnel.HTTPOptions{Domain: "a b.tollgate.localhost"}, "", codes.BindURL},
	}
	for _, tc := range cases {
		got, err := requestedHost(&tc.opts, base)
		if tc.code != "" {
			if err == nil || err.Code != tc.code {
				t.Errorf("%+v: err = %v, want %s", tc.opts, err, tc.code)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%+v: %q, %v; want %q", tc.opts, got, err, tc.want)
		}
	}
}

func TestCheckBindAllowed(t *testing.T) {
	b := &binder{baseDomain: "tollgate.localhost", region: "us"}
	snap, err := snapshot.New(snapshot.Data{ReservedDomains: []snapshot.ReservedDomain{
		{ID: "rd_1", AccountID: "acct_a", Domain: "mine.example.com", Region: "us"},
		{ID: "rd_2", AccountID: "acct_a", Domain: "eu.example.com", Region: "eu"},
		{ID: "rd_3", AccountID: "acct_b", Domain: "theirs.tollgate.localhost", Region: "us"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := &authn.Identity{Account: &snapshot.Account{ID: "acct_a"}}
	limited := &authn.Identity{Account: &snapshot.Account{ID: "acct_a"}, ACL: []string{"bind:*.example.com"}}
	cases := []struct {
		ident *authn.Identity
		host  string
		code  codes.Code
	}{
		{a, "app.tollgate.localhost", ""},
		{a, "tollgate.localhost", codes.BindOutsideBase},
		{a, "a.b.tollgate.localhost", codes.BindOutsideBase},
		{a, "app.example.com", codes.BindOutsideBase},
		{a, "mine.example.com", ""},
		{a, "eu.example.com", codes.BindRegion},
		{a, "theirs.tollgate.localhost", codes.BindReservedOther},
		{limited, "app.tollgate.localhost", codes.BindACL},
		{limited, "mine.example.com", ""},
	}
	for _, tc := range cases {
		err := b.checkBindAllowed(snap, tc.ident, "https", tc.host)
		if tc.code == "" && err != nil || tc.code != "" && (err == nil || err.Code != tc.code) {
			t.Errorf("%s (acl %v): %v, want %q", tc.host, tc.ident.ACL, err, tc.code)
		}
	}
}

// base64URL is the alphabet of base64.RawURLEncoding.
const base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestBindTokens(t *testing.T) {
	dir := t.TempDir()
	bt, err := loadBindTokens(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	tok := bt.issue("acct_a", "https", "app.tollgate.localhost")
	if key, ok := bt.verify(tok, "acct_a", "https"); !ok || key != "app.tollgate.localhost" {
		t.Fatalf("verify = %q %v", key, ok)
	}
	if _, ok := bt.verify(tok, "acct_b", "https"); ok {
		t.Fatal("a token verified for another account")
	}
	if _, ok := bt.verify(tok, "acct_a", "tcp"); ok {
		t.Fatal("a token verified for another proto")
	}
	// Forgeries: every MAC character changed in turn, and a last character
	// that differs only in the bits base64 leaves unused.
	for i := strings.LastIndexByte(tok, '.') + 1; i < len(tok); i++ {
		c := byte('A')
		if tok[i] == 'A' {
			c = 'B'
		}
		if _, ok := bt.verify(tok[:i]+string(c)+tok[i+1:], "acct_a", "https"); ok {
			t.Fatalf("a forged token verified (character %d changed)", i)
		}
	}
	last := strings.IndexByte(base64URL, tok[len(tok)-1])
	if _, ok := bt.verify(tok[:len(tok)-1]+string(base64URL[last^1]), "acct_a", "https"); ok {
		t.Fatal("a token with other unused trailing bits verified")
	}
	// The key persists: a restarted edge accepts tokens it issued before.
	bt2, err := loadBindTokens(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bt2.verify(tok, "acct_a", "https"); !ok {
		t.Fatal("token not accepted after a restart")
	}
}

// TestBindTokensRegionWide: edges that share a region secret verify each
// other's tokens, whatever their data dirs hold; another secret does not.
func TestBindTokensRegionWide(t *testing.T) {
	a, err := loadBindTokens(t.TempDir(), "region-secret")
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadBindTokens(t.TempDir(), "region-secret")
	if err != nil {
		t.Fatal(err)
	}
	other, err := loadBindTokens(t.TempDir(), "another-secret")
	if err != nil {
		t.Fatal(err)
	}
	tok := a.issue("acct_a", "https", "app.tollgate.localhost")
	if key, ok := b.verify(tok, "acct_a", "https"); !ok || key != "app.tollgate.localhost" {
		t.Fatalf("a sibling edge's token: %q %v", key, ok)
	}
	if _, ok := other.verify(tok, "acct_a", "https"); ok {
		t.Fatal("a token verified under another region secret")
	}
	if string(a.secret) == "region-secret" {
		t.Fatal("the region secret itself signs tokens")
	}
}

func TestRouterTakeover(t *testing.T) {
	r := newRouter()
	s1, s2 := &agentSession{}, &agentSession{}
	ep1 := &Endpoint{key: "a", session: s1}
	ep2 := &Endpoint{key: "a", session: s2}
	if _, _, ok := r.bind(ep1, nil); !ok {
		t.Fatal("first bind refused")
	}
	if _, holder, ok := r.bind(ep2, func(*Endpoint) bool { return false }); ok || holder != ep1 {
		t.Fatal("bind of a taken key without takeover succeeded")
	}
	old, _, ok := r.bind(ep2, func(*Endpoint) bool { return true })
	if !ok || len(old) != 1 || old[0] != ep1 {
		t.Fatal("takeover failed")
	}
	r.unbind(ep1) // the old holder's late unbind must not remove the new one
	if got, _ := r.lookup("a"); got != ep2 {
		t.Fatal("a stale unbind removed the new holder")
	}
	r.unbind(ep2)
	if _, ok := r.lookup("a"); ok {
		t.Fatal("unbind left the route")
	}
}
