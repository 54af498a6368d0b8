package edge

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// handshake runs one TLS handshake with cfg against addr and returns the
// connection state, or the error.
func handshake(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.ConnectionState(), nil
}

// TestPublicTLSCipherSuites: over TLS 1.2 the public listener agrees only
// to ECDHE AEAD suites; a client offering only CBC suites fails, even on a
// name that allows TLS 1.0; a TLS 1.1 client of that name still gets in.
func TestPublicTLSCipherSuites(t *testing.T) {
	addr := startTLSEdge(t)
	cbc := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA256}
	for _, tc := range []struct {
		name     string
		sni      string
		min, max uint16
		suites   []uint16
		ok       bool
	}{
		{"TLS 1.2 CBC only", "app.tls.test", tls.VersionTLS12, tls.VersionTLS12, cbc, false},
		{"TLS 1.2 CBC only, name allowing 1.0", "old.tls.test", tls.VersionTLS10, tls.VersionTLS12, cbc, false},
		{"TLS 1.2 GCM", "app.tls.test", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, true},
		{"TLS 1.2 ChaCha20", "app.tls.test", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}, true},
		{"TLS 1.2 default suites", "app.tls.test", tls.VersionTLS12, tls.VersionTLS12, nil, true},
		{"TLS 1.1 CBC, name allowing 1.0", "old.tls.test", tls.VersionTLS11, tls.VersionTLS11, cbc, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := handshake(t, addr, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true, MinVersion: tc.min, MaxVersion: tc.max, CipherSuites: tc.suites})
			if (err == nil) != tc.ok {
				t.Fatalf("handshake error %v, want ok = %v", err, tc.ok)
			}
			if err == nil && st.Version == tls.VersionTLS12 {
				switch st.CipherSuite {
				case tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
					tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
					tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:
				default:
					t.Fatalf("TLS 1.2 negotiated %s", tls.CipherSuiteName(st.CipherSuite))
				}
			}
		})
	}
}

// TestSessionTicketRotation: tickets the edge issues resume on a later
// connection (the edge's keys, not a per-connection one); after one
// rotation a ticket still resumes (the previous key is kept), after two
// it no longer does; each rotation puts a new key first.
func TestSessionTicketRotation(t *testing.T) {
	e := startTLSEdgeFull(t)
	addr := e.Addrs().HTTPS
	pt := e.public.tls
	first := pt.keys()
	if len(first) != 1 {
		t.Fatalf("%d keys at start, want 1", len(first))
	}
	resumes := func(cache tls.ClientSessionCache) bool {
		t.Helper()
		st, err := handshake(t, addr, &tls.Config{ServerName: "app.tls.test", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		return st.DidResume
	}
	cache := tls.NewLRUClientSessionCache(4)
	if resumes(cache) {
		t.Fatal("first connection resumed")
	}
	if !resumes(cache) {
		t.Fatal("second connection did not resume: tickets are not keyed by the edge")
	}
	if err := pt.rotate(); err != nil {
		t.Fatal(err)
	}
	keys := pt.keys()
	if len(keys) != 2 || keys[1] != first[0] || keys[0] == first[0] {
		t.Fatalf("after one rotation: %d keys, previous kept second = %v", len(keys), len(keys) == 2 && keys[1] == first[0])
	}
	old := tls.NewLRUClientSessionCache(4)
	if resumes(old) || !resumes(old) {
		t.Fatal("no resumption under the new key")
	}
	if err := pt.rotate(); err != nil {
		t.Fatal(err)
	}
	if k := pt.keys(); len(k) != ticketKeysKept || k[1] != keys[0] {
		t.Fatalf("after two rotations: %d keys", len(k))
	}
	if !resumes(old) {
		t.Fatal("a ticket of the previous key did not resume")
	}
	stale := tls.NewLRUClientSessionCache(4)
	resumes(stale)
	_ = pt.rotate()
	_ = pt.rotate()
	if resumes(stale) {
		t.Fatal("a ticket two rotations old still resumed")
	}
}
