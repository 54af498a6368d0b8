package edge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// httpOwner is an endpoint owner whose proxy streams reach a real HTTP
// server on loopback that answers with the owner's name: what an agent
// and its upstream do, without the tunnel.
type httpOwner struct {
	name  string
	ident *authn.Identity
	addr  string
}

func newHTTPOwner(t *testing.T, name, account string) *httpOwner {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }),
		ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return &httpOwner{name: name, addr: ln.Addr().String(),
		ident: &authn.Identity{Account: &snapshot.Account{ID: account, Active: true}}}
}

func (o *httpOwner) Identity() *authn.Identity { return o.ident }
func (o *httpOwner) OpenProxy(ctx context.Context, _ *tunnel.ProxyHeader) (Stream, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}
func (o *httpOwner) DropEndpoint(*Endpoint, codes.Code, string) {}

// bindPool binds host for o through the edge's NewEndpoint and Route, as
// the SSH ingress does, asking for pooling or not.
func bindPool(t *testing.T, e *Edge, o *httpOwner, host string, pooling bool) (*Endpoint, *codes.Error) {
	t.Helper()
	opts, _ := json.Marshal(tunnel.HTTPOptions{Hostname: host})
	ep, err := e.NewEndpoint(&tunnel.Bind{Proto: "https", Opts: opts, Extra: tunnel.BindExtra{PoolingEnabled: pooling}}, o.ident, o)
	if err != nil {
		t.Fatalf("NewEndpoint: %v", err)
	}
	return ep, e.Route(ep)
}

// TestEndpointPool: agents of one account that all ask for pooling share a
// URL, and requests alternate between them; a bind without pooling, and
// another account's even with pooling, are refused; when one member goes,
// every request reaches the other.
func TestEndpointPool(t *testing.T) {
	e := startTLSEdgeFull(t)
	const host = "pool.tls.test"
	a, b := newHTTPOwner(t, "member-a", "acct_1"), newHTTPOwner(t, "member-b", "acct_1")
	epA, err := bindPool(t, e, a, host, true)
	if err != nil {
		t.Fatalf("first member: %v", err)
	}
	if _, err := bindPool(t, e, b, host, true); err != nil {
		t.Fatalf("second member refused: %v", err)
	}
	if _, err := bindPool(t, e, newHTTPOwner(t, "lone", "acct_1"), host, false); err == nil || err.Code != codes.BindTaken {
		t.Fatalf("a bind without pooling joined the pool: %v", err)
	}
	if _, err := bindPool(t, e, newHTTPOwner(t, "other", "acct_2"), host, true); err == nil || err.Code != codes.BindTaken {
		t.Fatalf("another account joined the pool: %v", err)
	}

	addr := e.Addrs().HTTPS
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, ServerName: host}, //nolint:gosec // the local CA's certificate; routing is under test
		DisableKeepAlives: true,                                                    // one connection per request: each is routed afresh
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	get := func() (string, error) {
		resp, err := client.Get("https://" + host + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		return string(body), nil
	}
	count := map[string]int{}
	for range 10 {
		who, err := get()
		if err != nil {
			t.Fatal(err)
		}
		count[who]++
	}
	if count["member-a"] != 5 || count["member-b"] != 5 {
		t.Fatalf("requests per member: %v, want 5 each (round-robin)", count)
	}

	// Member a goes (its session ended): the pool's URL stays up.
	e.Unbind(epA)
	for range 6 {
		who, err := get()
		if err != nil || who != "member-b" {
			t.Fatalf("after member a left: %q, %v", who, err)
		}
	}
}
