package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/edge/certs"
	"github.com/tollgate/tollgate/snapshot"
)

// startTLSEdge runs startTLSEdgeFull and returns its public HTTPS address.
// startLocalCerts starts a certificate manager for base whose issuer is a
// new local CA, as `tollgated dev` has; it stops at the end of the test.
func startLocalCerts(t *testing.T, base string) (*certs.Manager, *certs.CA) {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := certs.NewLocalIssuer(ca, certs.LocalIssuerConfig{BaseDomain: base})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := certs.New(certs.Config{BaseDomain: base, DataDir: dir, Issuer: iss})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); mgr.Stop() })
	return mgr, ca
}

func startTLSEdge(t *testing.T) string { return startTLSEdgeFull(t).Addrs().HTTPS }

// startTLSEdgeFull runs an Edge with the local CA on loopback whose snapshot
// reserves old.<base> (min TLS 1.0), new.<base> (1.3) and *.wild.test
// (1.3), with an edge floor of 1.0 and default 1.2. It returns the public
// HTTPS address once the snapshot is applied.
func startTLSEdgeFull(t *testing.T) *Edge {
	t.Helper()
	const base = "tls.test"
	mgr, ca := startLocalCerts(t, base)
	ctx, cancel := context.WithCancel(context.Background())
	agentCert, err := ca.IssueServerCert([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.New(snapshot.Data{Revision: 1, ReservedDomains: []snapshot.ReservedDomain{
		{ID: "rd_1", AccountID: "acct_1", Domain: "old." + base, Region: "us", MinTLSVersion: "1.0"},
		{ID: "rd_2", AccountID: "acct_1", Domain: "new." + base, Region: "us", MinTLSVersion: "1.3"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{
		BaseDomain: base, AgentAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", HTTPAddr: "off",
		DisableQUIC: true, DefaultMinTLS: "1.2", MinTLSFloor: "1.0",
	}, Deps{AgentTLS: &tls.Config{Certificates: []tls.Certificate{agentCert}}, Certs: mgr})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	e.ApplySnapshot(snap)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for e.Snapshot().Revision() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("snapshot not applied")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return e
}

// TestPublicMinTLSWithOpenSSL checks the minimum TLS version a real
// client meets: the edge default (1.2) for an unreserved name, and each
// reserved domain's min_tls_version (1.0, 1.3).
func TestPublicMinTLSWithOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("this test needs the openssl command: apt-get install openssl (.ci/run does)")
	}
	addr := startTLSEdge(t)
	for _, tc := range []struct {
		name    string
		version string // openssl flag
		ok      bool
	}{
		{"app.tls.test", "-tls1_1", false},
		{"app.tls.test", "-tls1_2", true},
		{"app.tls.test", "-tls1_3", true},
		{"new.tls.test", "-tls1_2", false},
		{"new.tls.test", "-tls1_3", true},
		{"old.tls.test", "-tls1", true},
		{"old.tls.test", "-tls1_1", true},
		{"old.tls.test", "-tls1_2", true},
	} {
		t.Run(tc.name+tc.version, func(t *testing.T) {
			out, ok := opensslConnect(t, addr, tc.name, tc.version)
			if ok != tc.ok {
				t.Fatalf("openssl s_client %s -servername %s: handshake ok = %v, want %v\n%s", tc.version, tc.name, ok, tc.ok, out)
			}
		})
	}
}

// opensslConnect runs one handshake with openssl s_client and reports
// whether a protocol and cipher were negotiated.
func opensslConnect(t *testing.T, addr, name, version string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	args := []string{"s_client", "-connect", addr, "-servername", name, version}
	if version == "-tls1" || version == "-tls1_1" {
		args = append(args, "-cipher", "DEFAULT:@SECLEVEL=0")
	}
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.CombinedOutput()
	s := string(out)
	// "Cipher is (NONE)" or "no peer certificate available" on failure.
	return s, strings.Contains(s, "Server certificate") && !strings.Contains(s, "Cipher is (NONE)")
}

// TestMinTLSConfig: the edge accepts 1.0–1.3 and refuses a default below
// its floor with a message that names both.
func TestMinTLSConfig(t *testing.T) {
	deps := Deps{AgentTLS: &tls.Config{}, Certs: nopCerts{}}
	for _, tc := range []struct {
		def, floor string
		errHas     string
	}{
		{"1.0", "1.0", ""},
		{"1.3", "1.2", ""},
		{"1.1", "1.2", "below this edge's floor"},
		{"1.4", "1.2", "unknown TLS version"},
		{"1.2", "2.0", "unknown TLS version"},
	} {
		_, err := New(Config{BaseDomain: "tls.test", DefaultMinTLS: tc.def, MinTLSFloor: tc.floor}, deps)
		if tc.errHas == "" && err != nil {
			t.Errorf("default %s floor %s: %v", tc.def, tc.floor, err)
		}
		if tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
			t.Errorf("default %s floor %s: error %v, want one containing %q", tc.def, tc.floor, err, tc.errHas)
		}
	}
}

type nopCerts struct{}

func (nopCerts) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return nil, errors.New("no certificates")
}
