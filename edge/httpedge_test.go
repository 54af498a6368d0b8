package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// httpEdge is an edge serving one HTTPS endpoint through a real agent
// session, and clients for it.
type httpEdge struct {
	e        *Edge
	data     snapshot.Data
	url      string // https://app.<base>
	roots    *x509.CertPool
	upstream atomic.Int64 // requests the upstream answered
}

// startHTTPEdge runs an edge with the local CA and an agent session bound
// at app.<base> with bind options opts, forwarding to an upstream that
// sets Strict-Transport-Security: max-age=1 on every response.
func startHTTPEdge(t *testing.T, opts string) *httpEdge {
	t.Helper()
	const base = "hsts.test"
	mgr, ca := startLocalCerts(t, base)
	ctx, cancel := context.WithCancel(context.Background())
	h := &httpEdge{roots: x509.NewCertPool()}
	pem, err := os.ReadFile(ca.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	h.roots.AppendCertsFromPEM(pem)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.upstream.Add(1)
		w.Header().Set("Strict-Transport-Security", "max-age=1")
		io.WriteString(w, "hello from upstream")
	}))
	t.Cleanup(up.Close)

	id, tok, hash := authn.NewCredential(ids.PrefixAuthtoken)
	h.data = snapshot.Data{
		Accounts:   []snapshot.Account{{ID: "acct_a", Active: true}},
		Principals: []snapshot.Principal{{ID: "usr_a", Active: true, AccountIDs: []string{"acct_a"}}},
		Authtokens: []snapshot.Authtoken{{ID: id, AccountID: "acct_a", OwnerID: "usr_a", SecretHash: hash}},
	}
	e, err := New(Config{BaseDomain: base, AgentAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DisableQUIC: true},
		Deps{AgentTLS: &tls.Config{}, Certs: mgr})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	h.e = e
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	})
	h.setSnapshot(t, nil)

	cs, _ := connectAgent(t, e, tok.Reveal())
	resp, err := cs.Bind(ctx, &tunnel.Bind{Proto: "https", Opts: json.RawMessage(opts)})
	if err != nil || resp.Error != "" {
		t.Fatalf("bind: %v %s", err, resp.Error)
	}
	h.url = resp.URL
	go func() {
		for {
			_, st, err := cs.AcceptProxy(ctx)
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				u, err := net.Dial("tcp", up.Listener.Addr().String())
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, st); u.(*net.TCPConn).CloseWrite() }()
				io.Copy(st, u)
			}()
		}
	}()
	return h
}

// setSnapshot applies the base data plus domains as the next revision.
func (h *httpEdge) setSnapshot(t *testing.T, domains []snapshot.ReservedDomain) {
	t.Helper()
	d := h.data
	d.Revision = h.e.Snapshot().Revision() + 1
	d.ReservedDomains = domains
	snap, err := snapshot.New(d)
	if err != nil {
		t.Fatal(err)
	}
	h.e.ApplySnapshot(snap)
	waitFor(t, "the snapshot", func() bool { return h.e.Snapshot().Revision() == d.Revision })
}

// client returns a client of the edge's HTTPS listener over HTTP/2 or
// HTTP/1.1, which keeps its connection alive between requests.
func (h *httpEdge) client(t *testing.T, h2 bool) *http.Client {
	addr := h.e.Addrs().HTTPS
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: h.roots},
		ForceAttemptHTTP2: h2,
		MaxConnsPerHost:   1,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}
