package httpproxy

import (
	"bufio"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/codes"
)

// gatedEndpoint is a testEndpoint with a Gate: requests whose
// Authorization is "Basic good" pass (and lose the field), "Basic ip-deny"
// gets a 403, anything else a 401 with a challenge.
type gatedEndpoint struct {
	*testEndpoint
	calls   atomic.Int64
	mu      sync.Mutex
	clients []netip.Addr
}

var (
	testRefusal403 = NewRefusal(http.StatusForbidden, codes.IPDenied, "refused by IP policy", "")
	testRefusal401 = NewRefusal(http.StatusUnauthorized, codes.BasicAuthRequired, "sign in", `Basic realm="test"`)
)

func (g *gatedEndpoint) Admit(client netip.Addr, auth []byte, n int) Admission {
	g.calls.Add(1)
	g.mu.Lock()
	g.clients = append(g.clients, client)
	g.mu.Unlock()
	switch {
	case n == 1 && string(auth) == "Basic good":
		return Admission{StripAuthorization: true}
	case n == 1 && string(auth) == "Basic ip-deny":
		return Admission{Refusal: testRefusal403}
	}
	return Admission{Refusal: testRefusal401}
}

// TestGate: a Gate decides every request before a byte of it reaches the
// agent, on HTTP/1.1 (plain and TLS) and HTTP/2: refusals are pages with
// the code, a 401 carries its challenge, an admitted request loses its
// Authorization field, and each request of a keep-alive connection is
// decided again.
func TestGate(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	g := &gatedEndpoint{testEndpoint: h.endpoint}
	h.proxy.resolver = mapResolver{testHost: g}
	for _, tc := range h.clients() {
		t.Run(tc.name, func(t *testing.T) {
			before := h.agent.accepted.Load()
			for _, c := range []struct {
				auth, code, challenge string
				status                int
			}{
				{"", "TG_3207", `Basic realm="test"`, 401},
				{"Basic bad", "TG_3207", `Basic realm="test"`, 401},
				{"Basic ip-deny", "TG_3205", "", 403},
			} {
				req, _ := http.NewRequest("POST", tc.base+"/echo", strings.NewReader("body"))
				if c.auth != "" {
					req.Header.Set("Authorization", c.auth)
				}
				resp, err := tc.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.status || resp.Header.Get(ErrorCodeHeader) != c.code ||
					resp.Header.Get("WWW-Authenticate") != c.challenge || !strings.Contains(string(body), c.code) {
					t.Fatalf("auth %q: %d %q %q %s", c.auth, resp.StatusCode, resp.Header.Get(ErrorCodeHeader), resp.Header.Get("WWW-Authenticate"), body)
				}
			}
			if n := h.agent.accepted.Load() - before; n != 0 {
				t.Fatalf("refused requests opened %d proxy streams", n)
			}
			for range 2 {
				req, _ := http.NewRequest("GET", tc.base+"/echo", nil)
				req.Header.Set("Authorization", "Basic good")
				if e := getEcho(t, tc.client, req); len(e.Header.Values("Authorization")) != 0 {
					t.Fatalf("the upstream saw Authorization %q", e.Header.Values("Authorization"))
				}
			}
		})
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range g.clients {
		if a != netip.MustParseAddr("127.0.0.1") {
			t.Fatalf("Gate saw client %v, want 127.0.0.1", a)
		}
	}
}

// TestGateTwoAuthorizationFields: the Gate learns the count, so a request
// that smuggles a second Authorization field is not admitted on the first.
func TestGateTwoAuthorizationFields(t *testing.T) {
	h := newHarness(t, testHandler(), harnessOpts{})
	h.proxy.resolver = mapResolver{testHost: &gatedEndpoint{testEndpoint: h.endpoint}}
	c := h.dial()
	io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: "+testHost+"\r\nAuthorization: Basic good\r\nAuthorization: Basic other\r\n\r\n")
	br := bufio.NewReader(c)
	resp, _ := readResponse(t, br, "GET")
	if resp.StatusCode != 401 || !resp.Close {
		t.Fatalf("status %d, close %v", resp.StatusCode, resp.Close)
	}
	expectClosed(t, br)
}
