package certs

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/edgeapi"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/snapshot"
)

func snapshotOf(t *testing.T, domains ...snapshot.ReservedDomain) *snapshot.Snapshot {
	t.Helper()
	s, err := snapshot.New(snapshot.Data{Revision: 1, ReservedDomains: domains})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestACMEHTTP01 obtains the base domain's certificate and, with no
// wildcard, a one-label name's own certificate at its first handshake,
// both validated over HTTP-01 by the edge's HTTP listener.
func TestACMEHTTP01(t *testing.T) {
	env := newACMEEnv(t, 0)
	acme := env.pebble.acmeConfig(env.edge)
	acme.DisableTLSALPNChallenge = true
	m := startACME(t, env.edge, Config{
		BaseDomain: testZone, ACME: acme, Storage: &certmagic.FileStorage{Path: t.TempDir()},
		AllowSubdomain: func(name string) bool { return name == "app."+testZone },
	})
	addr := addrOf(env.edge.https)
	leaf := waitServed(t, addr, testZone, env.pebble.roots, 20*time.Second, nil)
	if !slices.Equal(leaf.DNSNames, []string{testZone}) {
		t.Fatalf("base certificate names = %v", leaf.DNSNames)
	}
	leaf, err := handshake(addr, "app."+testZone, env.pebble.roots)
	if err != nil {
		t.Fatalf("on-demand certificate for app: %v", err)
	}
	if !slices.Equal(leaf.DNSNames, []string{"app." + testZone}) {
		t.Fatalf("app certificate names = %v, want its own", leaf.DNSNames)
	}
	if env.edge.challenges.Load() < 2 {
		t.Fatalf("%d HTTP-01 requests answered, want at least 2", env.edge.challenges.Load())
	}
	if _, ok := m.Status(testZone); !ok {
		t.Fatal("no status for the base domain")
	}

	// A one-label name AllowSubdomain refuses gets nothing, and no order.
	orders := env.pebble.orders.Load()
	if _, err := handshake(addr, "random."+testZone, env.pebble.roots); err == nil {
		t.Fatal("handshake for a refused one-label name succeeded")
	}
	if got := env.pebble.orders.Load(); got != orders {
		t.Fatalf("a refused name placed %d orders", got-orders)
	}
}

// TestACMETLSALPN01 obtains a reserved custom domain's certificate as soon
// as it is reserved, over TLS-ALPN-01 on the HTTPS listener, with the
// reservation's RSA key type; an unreserved name is refused without any
// order at the CA.
func TestACMETLSALPN01(t *testing.T) {
	env := newACMEEnv(t, 0)
	acme := env.pebble.acmeConfig(env.edge)
	acme.DisableHTTPChallenge = true
	var snap atomicSnapshot
	snap.Store(snapshotOf(t))
	reporter := &recordingReporter{}
	m := startACME(t, env.edge, Config{
		BaseDomain: testZone, ACME: acme, Storage: &certmagic.FileStorage{Path: t.TempDir()},
		Snapshot: snap.Load, Region: "eu", Status: reporter, ReservationPoll: 50 * time.Millisecond,
	})
	addr := addrOf(env.edge.https)
	waitServed(t, addr, testZone, env.pebble.roots, 20*time.Second, nil)
	baseOrders := env.pebble.orders.Load()

	snap.Store(snapshotOf(t,
		snapshot.ReservedDomain{ID: "rd_1", AccountID: "acct_1", Domain: "shop.customer.test", Region: "eu", PrivateKeyType: "rsa"},
		snapshot.ReservedDomain{ID: "rd_2", AccountID: "acct_1", Domain: "us.customer.test", Region: "us"},
	))
	// Obtained without any handshake: the status report says so.
	waitWithin(t, 20*time.Second, "a status report for shop.customer.test", func() bool {
		st, ok := reporter.last("shop.customer.test")
		return ok && !st.RenewsAt.IsZero()
	})
	if env.pebble.orders.Load() != baseOrders+1 {
		t.Fatalf("orders = %d, want %d", env.pebble.orders.Load(), baseOrders+1)
	}
	leaf, err := handshake(addr, "shop.customer.test", env.pebble.roots)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := leaf.PublicKey.(*rsa.PublicKey); !ok {
		t.Fatalf("shop.customer.test key is %T, want RSA (private_key_type rsa)", leaf.PublicKey)
	}
	st, _ := reporter.last("shop.customer.test")
	if !st.RenewsAt.After(time.Now()) || !st.RenewsAt.Before(leaf.NotAfter) || st.JobErrorCode != "" {
		t.Fatalf("status = %+v (not after %s)", st, leaf.NotAfter)
	}
	if env.edge.alpn.Load() == 0 {
		t.Fatal("no TLS-ALPN-01 validation handshake reached the HTTPS listener")
	}

	// Unreserved, or reserved in another region: refused, no order.
	before := env.pebble.orders.Load()
	for _, name := range []string{"evil.customer.test", "us.customer.test", "shop.customer.test.evil.test"} {
		if _, err := handshake(addr, name, env.pebble.roots); err == nil {
			t.Fatalf("handshake for %s succeeded", name)
		}
	}
	if got := env.pebble.orders.Load(); got != before {
		t.Fatalf("refused names placed %d orders", got-before)
	}
	if _, err := m.GetCertificate(helloFor("evil.customer.test")); !errors.Is(err, ErrNameNotAllowed) {
		t.Fatalf("GetCertificate(evil) = %v, want ErrNameNotAllowed", err)
	}

	// Removing the reservation stops serving the name.
	snap.Store(snapshotOf(t))
	waitWithin(t, 5*time.Second, "shop.customer.test to be refused", func() bool {
		_, err := m.GetCertificate(helloFor("shop.customer.test"))
		return errors.Is(err, ErrNameNotAllowed)
	})
}

// TestACMEDNS01Wildcard obtains "*.<base>" over DNS-01, writing the TXT
// record with RFC 2136 updates to a DNS server that Pebble then queries;
// every one-label name is served from it without an order of its own.
func TestACMEDNS01Wildcard(t *testing.T) {
	env := newACMEEnv(t, 0)
	acme := env.pebble.acmeConfig(env.edge)
	prov, err := NewDNSProvider(DNSProviderConfig{Name: DNSRFC2136, Server: env.dns.addr,
		TSIGKeyName: tsigKeyName, TSIGSecret: tsigSecret})
	if err != nil {
		t.Fatal(err)
	}
	acme.DNS = &DNSConfig{Provider: prov, Resolvers: []string{env.dns.addr}}
	m := startACME(t, env.edge, Config{
		BaseDomain: testZone, ACME: acme, Storage: &certmagic.FileStorage{Path: t.TempDir()},
		AllowSubdomain: func(string) bool { return false }, // only the wildcard may serve them
	})
	addr := addrOf(env.edge.https)
	waitWithin(t, 30*time.Second, "the wildcard", m.WildcardHeld)
	for _, name := range []string{"a." + testZone, "b." + testZone} {
		leaf, err := handshake(addr, name, env.pebble.roots)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(leaf.DNSNames, []string{"*." + testZone}) {
			t.Fatalf("%s served %v, want the wildcard", name, leaf.DNSNames)
		}
	}
	waitServed(t, addr, testZone, env.pebble.roots, 20*time.Second, nil)
	if n := env.pebble.orders.Load(); n != 2 {
		t.Fatalf("orders = %d, want 2 (wildcard and base)", n)
	}
	waitWithin(t, 5*time.Second, "challenge TXT records to be cleaned up", func() bool { return env.dns.txtCount() == 0 })
}

// TestACMETwoEdgesShareStorage: two edges on one storage obtain each
// certificate once; the second serves what the first obtained, and a
// challenge presented by one is answered by the other (only the first's
// listeners are reachable by the CA).
func TestACMETwoEdgesShareStorage(t *testing.T) {
	// Edges share certmagic storage: a directory, the control-plane store
	// (each edge with its own connection to one database, as separate
	// processes have), or — what `tollgated edge` uses by default — the
	// control plane's edge API, each edge with its own ControlStorage
	// client and no database credentials (issue 13 item 7).
	storages := map[string]func(t *testing.T) func() certmagic.Storage{
		"file": func(t *testing.T) func() certmagic.Storage {
			shared := &certmagic.FileStorage{Path: t.TempDir()}
			return func() certmagic.Storage { return shared }
		},
		"store": func(t *testing.T) func() certmagic.Storage {
			dsn := filepath.Join(t.TempDir(), "tollgate.db")
			return func() certmagic.Storage {
				st, err := store.Open(context.Background(), dsn, store.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = st.Close() })
				return st.CertStorage(store.CertStorageOptions{LockPoll: 100 * time.Millisecond})
			}
		},
		"control": func(t *testing.T) func() certmagic.Storage {
			const secret = "edge-secret-for-the-acme-test-0123"
			st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cp.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			core := controlplane.New(controlplane.Config{RateLimit: -1}, st)
			t.Cleanup(core.Close)
			hs := httptest.NewServer(edgeapi.New(edgeapi.Config{Secret: secret}, core).Handler())
			t.Cleanup(hs.Close)
			return func() certmagic.Storage {
				cs, err := NewControlStorage(ControlStorageConfig{URL: hs.URL, Secret: secret, LockPoll: 100 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cs.Close(context.Background()) })
				return cs
			}
		},
	}
	for name, open := range storages {
		t.Run(name, func(t *testing.T) { testTwoEdgesShareStorage(t, open(t)) })
	}
}

func testTwoEdgesShareStorage(t *testing.T, storage func() certmagic.Storage) {
	env := newACMEEnv(t, 0)
	acme := env.pebble.acmeConfig(env.edge)
	other := listenEdge(t) // the second edge: the CA never connects here
	startACME(t, env.edge, Config{BaseDomain: testZone, ACME: acme, Storage: storage()})
	startACME(t, other, Config{BaseDomain: testZone, ACME: acme, Storage: storage()})

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for _, l := range []*edgeListeners{env.edge, other, env.edge, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := handshake(addrOf(l.https), "app."+testZone, env.pebble.roots); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("handshake: %v", err)
	}
	waitServed(t, addrOf(env.edge.https), testZone, env.pebble.roots, 20*time.Second, nil)
	waitServed(t, addrOf(other.https), testZone, env.pebble.roots, 20*time.Second, nil)
	if n := env.pebble.orders.Load(); n != 2 {
		t.Fatalf("orders at the CA = %d, want 2 (base and app, once each)", n)
	}

	// A restarted edge serves from storage: no new order.
	third := listenEdge(t)
	startACME(t, third, Config{BaseDomain: testZone, ACME: acme, Storage: storage()})
	waitServed(t, addrOf(third.https), testZone, env.pebble.roots, 10*time.Second, nil)
	if _, err := handshake(addrOf(third.https), "app."+testZone, env.pebble.roots); err != nil {
		t.Fatal(err)
	}
	if n := env.pebble.orders.Load(); n != 2 {
		t.Fatalf("orders after a restart = %d, want still 2", n)
	}
}

// TestACMERenewal: a short-lived certificate is renewed in the background,
// ahead of expiry, and the new one is served without a restart.
func TestACMERenewal(t *testing.T) {
	env := newACMEEnv(t, 12*time.Second)
	acme := env.pebble.acmeConfig(env.edge)
	startACME(t, env.edge, Config{
		BaseDomain: testZone, ACME: acme, Storage: &certmagic.FileStorage{Path: t.TempDir()},
		RenewCheckInterval: 250 * time.Millisecond,
	})
	addr := addrOf(env.edge.https)
	first := waitServed(t, addr, testZone, env.pebble.roots, 20*time.Second, nil)
	if life := first.NotAfter.Sub(first.NotBefore); life > time.Minute {
		t.Fatalf("certificate lives %s; the test wants a short-lived one", life)
	}
	second := waitServed(t, addr, testZone, env.pebble.roots, 20*time.Second, func(c *x509.Certificate) bool {
		return c.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	if !time.Now().Before(first.NotAfter) {
		t.Fatalf("renewed only after expiry (%s)", first.NotAfter)
	}
	if !second.NotAfter.After(first.NotAfter) {
		t.Fatalf("renewed certificate expires %s, not after the first's %s", second.NotAfter, first.NotAfter)
	}
}

// TestACMECADown: with the CA unreachable, held certificates are still
// served at once, a new reservation's job reports INTERNAL_ERROR with a
// retry time, and an on-demand name fails its handshake rather than hang.
func TestACMECADown(t *testing.T) {
	env := newACMEEnv(t, 0)
	acme := env.pebble.acmeConfig(env.edge)
	var snap atomicSnapshot
	snap.Store(snapshotOf(t))
	reporter := &recordingReporter{}
	m := startACME(t, env.edge, Config{
		BaseDomain: testZone, ACME: acme, Storage: &certmagic.FileStorage{Path: t.TempDir()},
		Snapshot: snap.Load, Status: reporter, ReservationPoll: 50 * time.Millisecond,
	})
	addr := addrOf(env.edge.https)
	held := waitServed(t, addr, testZone, env.pebble.roots, 20*time.Second, nil)

	env.pebble.down.Store(true)
	start := time.Now()
	leaf, err := handshake(addr, testZone, env.pebble.roots)
	if err != nil || leaf.SerialNumber.Cmp(held.SerialNumber) != 0 {
		t.Fatalf("held certificate with the CA down: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a handshake for a held name took %s with the CA down", d)
	}

	snap.Store(snapshotOf(t, snapshot.ReservedDomain{ID: "rd_1", AccountID: "acct_1", Domain: "shop.customer.test"}))
	waitWithin(t, 20*time.Second, "a failed provisioning job", func() bool {
		st, ok := reporter.last("shop.customer.test")
		return ok && st.JobErrorCode != ""
	})
	st, _ := reporter.last("shop.customer.test")
	if st.JobErrorCode != StatusInternalError || st.JobRetriesAt.Before(time.Now().Add(30*time.Second)) || st.JobStartedAt.IsZero() {
		t.Fatalf("status with the CA down = %+v, want INTERNAL_ERROR retrying in about a minute", st)
	}
	if got, ok := m.Status("shop.customer.test"); !ok || got.JobErrorCode != StatusInternalError {
		t.Fatalf("Manager.Status = %+v, %v", got, ok)
	}

	if _, err := handshake(addr, "new."+testZone, env.pebble.roots); err == nil {
		t.Fatal("an on-demand handshake succeeded with the CA down")
	}
}

func TestACMEConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ACMEConfig
	}{
		{"plain http directory", ACMEConfig{CA: "http://ca.example/dir"}},
		{"bad email", ACMEConfig{Email: "not an email"}},
		{"port", ACMEConfig{HTTPPort: 70000}},
		{"every challenge off", ACMEConfig{DisableHTTPChallenge: true, DisableTLSALPNChallenge: true}},
		{"DNS without a provider", ACMEConfig{DNS: &DNSConfig{}}},
		{"DNS resolver without port", ACMEConfig{DNS: &DNSConfig{Provider: nopDNS{}, Resolvers: []string{"127.0.0.1"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(Config{BaseDomain: testZone, ACME: &tc.cfg, DataDir: t.TempDir()}); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
	m, err := New(Config{BaseDomain: testZone, ACME: &ACMEConfig{}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if m.acme.CA != LetsEncryptProduction || m.acme.HTTPPort != 80 || m.acme.TLSALPNPort != 443 {
		t.Fatalf("defaults = %+v", m.acme)
	}
	if slices.Contains(m.ManagedNames(), "*."+testZone) {
		t.Fatal("a wildcard is managed without DNS-01")
	}
	if _, err := New(Config{BaseDomain: testZone, ACME: &ACMEConfig{}, Issuer: &LocalIssuer{}, DataDir: t.TempDir()}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New with both an issuer and ACME = %v, want ErrInvalidConfig", err)
	}
}

func TestNewDNSProvider(t *testing.T) {
	for _, tc := range []struct {
		cfg DNSProviderConfig
		ok  bool
	}{
		{DNSProviderConfig{Name: "cloudflare", APIToken: "tok"}, true},
		{DNSProviderConfig{Name: "cloudflare"}, false},
		{DNSProviderConfig{Name: "rfc2136", Server: "127.0.0.1", TSIGKeyName: "k", TSIGSecret: tsigSecret}, true},
		{DNSProviderConfig{Name: "rfc2136", Server: "127.0.0.1", TSIGKeyName: "k", TSIGSecret: "%%%"}, false},
		{DNSProviderConfig{Name: "rfc2136", Server: "127.0.0.1", TSIGKeyName: "k", TSIGSecret: tsigSecret, TSIGAlgorithm: "md5"}, false},
		{DNSProviderConfig{Name: "rfc2136", TSIGKeyName: "k", TSIGSecret: tsigSecret}, false},
		{DNSProviderConfig{Name: "route66"}, false},
	} {
		p, err := NewDNSProvider(tc.cfg)
		if tc.ok != (err == nil) || (err == nil) != (p != nil) {
			t.Errorf("NewDNSProvider(%s) = %v, %v", tc.cfg.Name, p, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("error %v does not wrap ErrInvalidConfig", err)
		}
		if err != nil && tc.cfg.TSIGSecret != "" && containsString(err.Error(), tc.cfg.TSIGSecret) {
			t.Errorf("error %q contains the secret", err)
		}
	}
}

func TestProblemCode(t *testing.T) {
	if got := problemCode(errors.New("dial tcp: connection refused")); got != StatusInternalError {
		t.Fatalf("network error → %s", got)
	}
	if got := problemCode(acmeProblem("urn:ietf:params:acme:error:dns")); got != StatusDNSError {
		t.Fatalf("dns problem → %s", got)
	}
	if got := problemCode(acmeProblem("urn:ietf:params:acme:error:rateLimited")); got != StatusInternalError {
		t.Fatalf("rate limit → %s", got)
	}
}
