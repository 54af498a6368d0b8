package httpproxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/codes"
)

// hstsEndpoint is a testEndpoint that sets Strict-Transport-Security.
type hstsEndpoint struct {
	*testEndpoint
	value string
}

func (e *hstsEndpoint) HSTS() string { return e.value }

// hstsHarness is a harness whose endpoint sets value as its HSTS policy,
// in front of an upstream that sends upstreamSTS ("" = none).
func hstsHarness(t *testing.T, value, upstreamSTS string) *harness {
	t.Helper()
	h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if upstreamSTS != "" {
			w.Header().Add("Strict-Transport-Security", upstreamSTS)
			w.Header().Add("strict-transport-security", "max-age=1")
		}
		w.Header().Set("X-Upstream", "yes")
		io.WriteString(w, "body of "+r.URL.Path)
	}), harnessOpts{})
	ep := &hstsEndpoint{testEndpoint: h.endpoint, value: value}
	h.proxy.resolver = mapResolver{testHost: ep}
	return h
}

// TestHSTSHeader: an endpoint's HSTS policy replaces every
// Strict-Transport-Security field of the upstream's responses over TLS
// (HTTP/1.1 and HTTP/2), is never sent over plain HTTP (RFC 6797 §7.2),
// and without a policy the upstream's fields pass unchanged.
func TestHSTSHeader(t *testing.T) {
	const policy = "max-age=31536000; includeSubDomains"
	for _, tc := range []struct {
		name, policy, upstream string
		want                   map[string][]string // client name → fields
	}{
		{"policy replaces upstream's", policy, "max-age=5", map[string][]string{
			"h1": {"max-age=5", "max-age=1"}, "h1-tls": {policy}, "h2": {policy}}},
		{"policy, upstream sends none", policy, "", map[string][]string{
			"h1": nil, "h1-tls": {policy}, "h2": {policy}}},
		{"no policy: upstream's pass", "", "max-age=5", map[string][]string{
			"h1": {"max-age=5", "max-age=1"}, "h1-tls": {"max-age=5", "max-age=1"}, "h2": {"max-age=5", "max-age=1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hstsHarness(t, tc.policy, tc.upstream)
			for _, c := range h.clients() {
				for i := 0; i < 3; i++ { // a kept-alive connection's later responses too
					resp, err := c.client.Get(fmt.Sprintf("%s/r%d", c.base, i))
					if err != nil {
						t.Fatalf("%s: %v", c.name, err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					got := resp.Header.Values("Strict-Transport-Security")
					if strings.Join(got, "|") != strings.Join(tc.want[c.name], "|") {
						t.Errorf("%s: Strict-Transport-Security %q, want %q", c.name, got, tc.want[c.name])
					}
					if resp.StatusCode != 200 || resp.Header.Get("X-Upstream") != "yes" || string(body) != fmt.Sprintf("body of /r%d", i) {
						t.Errorf("%s: %d %v %q", c.name, resp.StatusCode, resp.Header, body)
					}
				}
			}
		})
	}
}

// TestHSTSHeaderPipelined: pipelined HTTP/1.1 requests over TLS each get
// one edge field and their own body, including a HEAD, a 204 and an
// interim 103.
func TestHSTSHeaderPipelined(t *testing.T) {
	h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=9")
		switch r.URL.Path {
		case "/hints":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "after hints")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			io.WriteString(w, "body of "+r.URL.Path)
		}
	}), harnessOpts{})
	h.proxy.resolver = mapResolver{testHost: &hstsEndpoint{testEndpoint: h.endpoint, value: "max-age=60"}}
	c, err := tls.Dial("tcp", h.tlsAddr, &tls.Config{RootCAs: h.roots, ServerName: testHost, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	paths := []string{"/a", "/hints", "/empty", "/b", "/head"}
	var req strings.Builder
	for _, p := range paths {
		m := "GET"
		if p == "/head" {
			m = "HEAD"
		}
		fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", m, p, testHost)
	}
	if _, err := io.WriteString(c, req.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, p := range paths {
		m := "GET"
		if p == "/head" {
			m = "HEAD"
		}
		resp, body := readResponse(t, br, m)
		if p == "/hints" {
			// The interim response passes as the upstream sent it.
			if resp.StatusCode != http.StatusEarlyHints || resp.Header.Get("Strict-Transport-Security") != "max-age=9" {
				t.Errorf("/hints: interim %d %v", resp.StatusCode, resp.Header)
			}
			resp, body = readResponse(t, br, m)
		}
		if got := resp.Header.Values("Strict-Transport-Security"); len(got) != 1 || got[0] != "max-age=60" {
			t.Errorf("%s: Strict-Transport-Security %q", p, got)
		}
		want := "body of " + p
		switch p {
		case "/hints":
			want = "after hints"
		case "/empty", "/head":
			want = ""
		}
		if string(body) != want {
			t.Errorf("%s: body %q, want %q", p, body, want)
		}
	}
}

func TestAppendHSTSHead(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nA: 1\r\nStrict-Transport-Security: max-age=1\r\nSTRICT-TRANSPORT-SECURITY: x\r\nStrict-Transport-Securityy: keep\r\nB: 2\r\n\r\n"
	var rh responseHead
	if err := parseResponseHead([]byte(head), &rh); err != nil {
		t.Fatal(err)
	}
	got := string(appendHSTSHead(nil, []byte(head), "max-age=2"))
	want := "HTTP/1.1 200 OK\r\nA: 1\r\nStrict-Transport-Securityy: keep\r\nB: 2\r\nStrict-Transport-Security: max-age=2\r\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// TestOverloadRefusesRequestsOnOpenConnections: once Config.Overload
// refuses, a second request on a kept-alive HTTP/1.1 connection and a new
// stream on an open HTTP/2 connection get 503 with Retry-After and the
// refusal's code; neither reaches the upstream, and no proxy stream is
// opened for them.
func TestOverloadRefusesRequestsOnOpenConnections(t *testing.T) {
	var over atomic.Bool
	refusal := NewRefusal(http.StatusServiceUnavailable, codes.EdgeOverloaded, "short of memory", "").WithRetryAfter(5)
	var upstream atomic.Int64
	h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstream.Add(1)
		io.WriteString(w, "ok")
	}), harnessOpts{cfg: func(c *Config) {
		c.Overload = func() *Refusal {
			if over.Load() {
				return refusal
			}
			return nil
		}
	}})
	for _, c := range h.clients() {
		t.Run(c.name, func(t *testing.T) {
			over.Store(false)
			before := upstream.Load()
			resp, err := c.client.Get(c.base + "/first")
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || upstream.Load() != before+1 {
				t.Fatalf("first request: %d, upstream saw %d", resp.StatusCode, upstream.Load()-before)
			}
			streams := h.agent.accepted.Load()

			over.Store(true)
			resp, err = c.client.Get(c.base + "/second") // the same connection: kept alive
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" ||
				resp.Header.Get(ErrorCodeHeader) != string(codes.EdgeOverloaded) || !strings.Contains(string(body), string(codes.EdgeOverloaded)) {
				t.Fatalf("while overloaded: %d %v %q", resp.StatusCode, resp.Header, body)
			}
			if n := upstream.Load(); n != before+1 {
				t.Errorf("the refused request reached the upstream (%d requests)", n-before)
			}
			if c.name == "h2" && h.agent.accepted.Load() != streams {
				t.Errorf("a proxy stream was opened for the refused HTTP/2 request")
			}
		})
	}
}
