package certs

import (
	"crypto/x509"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/tollgate/tollgate/snapshot"
)

// TestLocalCAWildcardReservation: in dev (local CA), a wildcard domain
// reserved under the base domain ("*.ci.<base>") gets its wildcard
// certificate, and the names one label under it are served from it; a
// name two labels under it is refused (a wildcard covers one label).
func TestLocalCAWildcardReservation(t *testing.T) {
	const base = "wild.tollgate.test"
	d := newDevSetup(t, t.TempDir(), base)
	var snap atomicSnapshot
	snap.Store(snapshotOf(t))
	m := startManager(t, Config{BaseDomain: base, DataDir: d.dir, Issuer: d.issuer, Snapshot: snap.Load,
		Region: "us", ReservationPoll: 20 * time.Millisecond})
	srv := serveTLS(t, m)
	snap.Store(snapshotOf(t,
		snapshot.ReservedDomain{ID: "rd_1", AccountID: "acct_1", Domain: "*.ci." + base, Region: "us"},
	))
	leaf := waitLeaf(t, srv.addr, "pr-1.ci."+base, d.ca.CertPool())
	if !slices.Equal(leaf.DNSNames, []string{"*.ci." + base}) {
		t.Fatalf("pr-1.ci.%s served %v, want the wildcard *.ci.%s", base, leaf.DNSNames, base)
	}
	leaf2, err := handshake(srv.addr, "pr-2.ci."+base, d.ca.CertPool())
	if err != nil || !slices.Equal(leaf2.DNSNames, leaf.DNSNames) {
		t.Fatalf("pr-2: %v %v, want the same wildcard", leaf2, err)
	}
	if _, err := handshake(srv.addr, "a.b.ci."+base, d.ca.CertPool()); err == nil {
		t.Fatal("a name two labels under the reserved wildcard got a certificate")
	}
}

// waitLeaf handshakes with name until it succeeds (the wildcard is obtained
// in the background) and returns the served leaf.
func waitLeaf(t *testing.T, addr, name string, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	waitWithin(t, 20*time.Second, "a certificate for "+name, func() bool {
		l, err := handshake(addr, name, pool)
		if err != nil || !slices.ContainsFunc(l.DNSNames, func(n string) bool { return n[0] == '*' }) {
			return false
		}
		leaf = l
		return true
	})
	return leaf
}

// TestACMEDNS01ReservedWildcard: with a DNS provider, a reserved wildcard
// custom domain gets one wildcard certificate over DNS-01 (RFC 2136 to the
// in-process DNS server, validated by Pebble), which serves every name one
// label under it; its status is reported under the wildcard's name.
func TestACMEDNS01ReservedWildcard(t *testing.T) {
	env := newACMEEnv(t, 0)
	acme := env.pebble.acmeConfig(env.edge)
	prov, err := NewDNSProvider(DNSProviderConfig{Name: DNSRFC2136, Server: env.dns.addr,
		TSIGKeyName: tsigKeyName, TSIGSecret: tsigSecret})
	if err != nil {
		t.Fatal(err)
	}
	acme.DNS = &DNSConfig{Provider: prov, Resolvers: []string{env.dns.addr}}
	var snap atomicSnapshot
	snap.Store(snapshotOf(t))
	reporter := &recordingReporter{}
	startACME(t, env.edge, Config{
		BaseDomain: testZone, ACME: acme, Storage: &certmagic.FileStorage{Path: t.TempDir()},
		Snapshot: snap.Load, Region: "eu", Status: reporter, ReservationPoll: 50 * time.Millisecond,
	})
	addr := addrOf(env.edge.https)
	snap.Store(snapshotOf(t,
		snapshot.ReservedDomain{ID: "rd_1", AccountID: "acct_1", Domain: "*.customer.test", Region: "eu"},
	))
	waitWithin(t, 30*time.Second, "a status report for *.customer.test", func() bool {
		st, ok := reporter.last("*.customer.test")
		return ok && !st.RenewsAt.IsZero()
	})
	for _, name := range []string{"a.customer.test", "b.customer.test"} {
		leaf, err := handshake(addr, name, env.pebble.roots)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(leaf.DNSNames, []string{"*.customer.test"}) {
			t.Fatalf("%s served %v, want the reserved wildcard", name, leaf.DNSNames)
		}
	}
}

// TestACMEReservedWildcardWithoutDNS: without a DNS provider the wildcard
// cannot be issued; its status says so and names --acme-dns.
func TestACMEReservedWildcardWithoutDNS(t *testing.T) {
	env := newACMEEnv(t, 0)
	var snap atomicSnapshot
	snap.Store(snapshotOf(t,
		snapshot.ReservedDomain{ID: "rd_1", AccountID: "acct_1", Domain: "*.customer.test", Region: "eu"},
	))
	reporter := &recordingReporter{}
	startACME(t, env.edge, Config{
		BaseDomain: testZone, ACME: env.pebble.acmeConfig(env.edge), Storage: &certmagic.FileStorage{Path: t.TempDir()},
		Snapshot: snap.Load, Region: "eu", Status: reporter, ReservationPoll: 50 * time.Millisecond,
	})
	waitWithin(t, 10*time.Second, "a status report for *.customer.test", func() bool {
		st, ok := reporter.last("*.customer.test")
		return ok && st.JobErrorCode == StatusDNSError && containsString(st.JobMsg, "--acme-dns")
	})
}
