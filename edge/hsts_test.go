package edge

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

// TestEndpointHSTSPrecedence: the reserved domain's hsts (exact, else the
// wildcard one label up) wins over the endpoint's option, follows the
// snapshot, and max-age=0 counts as set; with neither, "" lets the
// upstream's field pass. The steady state allocates nothing.
func TestEndpointHSTSPrecedence(t *testing.T) {
	e := newPolicyEdge(t, snapshot.Data{})
	own, canon, cerr := newEndpointHSTS("includesubdomains; MAX-AGE=60", "app.example.com", e.snap)
	if cerr != nil || canon != "max-age=60; includeSubDomains" {
		t.Fatalf("option: %q, %v", canon, cerr)
	}
	none, _, _ := newEndpointHSTS("", "app.example.com", e.snap)
	rd := func(domain, hsts string) snapshot.ReservedDomain {
		return snapshot.ReservedDomain{ID: ids.New(ids.PrefixReservedDomain), AccountID: "acct_a", Domain: domain, Region: "us", HSTS: hsts}
	}
	for _, tc := range []struct {
		name       string
		domains    []snapshot.ReservedDomain
		own, empty string // value with the option, without it
	}{
		{"no reservation", nil, "max-age=60; includeSubDomains", ""},
		{"reservation without hsts", []snapshot.ReservedDomain{rd("app.example.com", "")}, "max-age=60; includeSubDomains", ""},
		{"reservation wins", []snapshot.ReservedDomain{rd("app.example.com", "max-age=0")}, "max-age=0", "max-age=0"},
		{"wildcard one label up", []snapshot.ReservedDomain{rd("*.example.com", "max-age=31536000; includeSubDomains; preload")},
			"max-age=31536000; includeSubDomains; preload", "max-age=31536000; includeSubDomains; preload"},
		{"exact before wildcard", []snapshot.ReservedDomain{rd("*.example.com", "max-age=5"), rd("app.example.com", "max-age=7")}, "max-age=7", "max-age=7"},
		{"wildcard two labels up", []snapshot.ReservedDomain{rd("*.com", "max-age=5")}, "max-age=60; includeSubDomains", ""},
	} {
		setSnapshot(t, e, snapshot.Data{ReservedDomains: tc.domains})
		if got := own.value(); got != tc.own {
			t.Errorf("%s: with the option %q, want %q", tc.name, got, tc.own)
		}
		if got := none.value(); got != tc.empty {
			t.Errorf("%s: without it %q, want %q", tc.name, got, tc.empty)
		}
	}
	if n := testing.AllocsPerRun(100, func() { own.value() }); n != 0 {
		t.Errorf("value allocates %v times per request", n)
	}
	if _, _, err := newEndpointHSTS("max-age=600; preload", "app.example.com", e.snap); err == nil || err.Code != codes.BindHSTS {
		t.Errorf("preload without includeSubDomains: %v, want %s", err, codes.BindHSTS)
	}
}

// TestHSTSThroughEdge: over HTTP/1.1 and HTTP/2 the endpoint's --hsts
// replaces the upstream's field; a reserved domain's hsts, arriving in a
// snapshot while the endpoint is bound, replaces both; the plain-HTTP
// redirect never carries the field.
func TestHSTSThroughEdge(t *testing.T) {
	h := startHTTPEdge(t, `{"HSTS":"max-age=600"}`)
	host := strings.TrimPrefix(h.url, "https://")
	host, _, _ = strings.Cut(host, ":")
	check := func(want string) {
		t.Helper()
		for _, h2 := range []bool{false, true} {
			resp, body := get(t, h.client(t, h2), h.url+"/")
			if got := resp.Header.Values("Strict-Transport-Security"); resp.StatusCode != 200 || body != "hello from upstream" ||
				len(got) != 1 || got[0] != want || (resp.ProtoMajor == 2) != h2 {
				t.Fatalf("%s: %d %q, Strict-Transport-Security %q; want %q", resp.Proto, resp.StatusCode, body, got, want)
			}
		}
	}
	check("max-age=600")
	h.setSnapshot(t, []snapshot.ReservedDomain{{ID: "rd_1", AccountID: "acct_a", Domain: host, Region: "us",
		HSTS: "max-age=31536000; includeSubDomains"}})
	check("max-age=31536000; includeSubDomains")

	plain := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+h.e.Addrs().HTTP+"/x", nil)
	req.Host = host
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Fatalf("plain HTTP: %d %v", resp.StatusCode, resp.Header)
	}
}
