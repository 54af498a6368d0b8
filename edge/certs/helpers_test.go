package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// testLogger shows warnings and errors in the test log; certmagic's info
// lines would drown the output.
func testLogger(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

func newTestCA(t *testing.T, dir string) *CA {
	t.Helper()
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatalf("LoadOrCreateCA: %v", err)
	}
	return ca
}

// countingIssuer counts Issue calls on a LocalIssuer; PreCheck and IssuerKey
// are promoted unchanged.
type countingIssuer struct {
	*LocalIssuer
	issued atomic.Int32
}

func (c *countingIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	c.issued.Add(1)
	return c.LocalIssuer.Issue(ctx, csr)
}

func newCountingIssuer(t *testing.T, ca *CA, base string) *countingIssuer {
	t.Helper()
	li, err := NewLocalIssuer(ca, LocalIssuerConfig{BaseDomain: base})
	if err != nil {
		t.Fatalf("NewLocalIssuer: %v", err)
	}
	return &countingIssuer{LocalIssuer: li}
}

// startManager builds and starts a Manager and stops it at cleanup.
func startManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(m.Stop)
	return m
}

// tlsServer is an HTTPS server on 127.0.0.1:0 whose certificates come from
// a Manager; it answers every request with the SNI it saw and records every
// GetCertificate error by server name.
type tlsServer struct {
	addr string
	mu   sync.Mutex
	errs map[string][]error
}

func serveTLS(t *testing.T, m *Manager) *tlsServer {
	t.Helper()
	s := &tlsServer{errs: map[string][]error{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.TLS.ServerName)
		}),
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
				c, err := m.GetCertificate(h)
				if err != nil {
					s.mu.Lock()
					s.errs[h.ServerName] = append(s.errs[h.ServerName], err)
					s.mu.Unlock()
				}
				return c, err
			},
		},
		ErrorLog:          log.New(io.Discard, "", 0),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return s
}

// errorsFor returns the GetCertificate errors recorded for name.
func (s *tlsServer) errorsFor(name string) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs[name]...)
}

// handshake runs a TLS handshake with serverName against addr, verifying
// the chain against pool (or not at all when pool is nil), and returns the
// leaf the server presented.
func handshake(addr, serverName string, pool *x509.CertPool) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config: &tls.Config{
			ServerName:         serverName,
			RootCAs:            pool,
			InsecureSkipVerify: pool == nil,
			MinVersion:         tls.VersionTLS12,
		},
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// httpsClient trusts pool and dials addr for every host, like a browser
// whose DNS points every name at the edge.
func httpsClient(t *testing.T, addr string, pool *x509.CertPool) *http.Client {
	t.Helper()
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// storedKeys lists every key under "certificates/" in s.
func storedKeys(t *testing.T, s certmagic.Storage) []string {
	t.Helper()
	keys, err := s.List(context.Background(), "certificates", true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("listing storage: %v", err)
	}
	return keys
}

// storedSites returns the site folders (one per certificate name) in s,
// such as "wildcard_.example.test".
func storedSites(t *testing.T, s certmagic.Storage) map[string]bool {
	t.Helper()
	sites := map[string]bool{}
	for _, k := range storedKeys(t, s) {
		parts := strings.Split(k, "/")
		if len(parts) >= 3 { // certificates/<issuer>/<site>/...
			sites[parts[2]] = true
		}
	}
	return sites
}
