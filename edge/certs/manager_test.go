package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/url"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/tollgate/tollgate/snapshot"
	"go.uber.org/zap"
)

// devSetup is a CA, a counting local issuer and file storage in one data dir.
type devSetup struct {
	dir     string
	ca      *CA
	issuer  *countingIssuer
	storage certmagic.Storage
}

func newDevSetup(t *testing.T, dir, base string) *devSetup {
	t.Helper()
	ca := newTestCA(t, filepath.Join(dir, "ca"))
	return &devSetup{
		dir:     dir,
		ca:      ca,
		issuer:  newCountingIssuer(t, ca, base),
		storage: &certmagic.FileStorage{Path: filepath.Join(dir, "certs")},
	}
}

func TestManagerServesBaseDomain(t *testing.T) {
	const base = "serve.tollgate.test"
	d := newDevSetup(t, t.TempDir(), base)
	m := startManager(t, Config{BaseDomain: base, DataDir: d.dir, Issuer: d.issuer})
	if got := d.issuer.issued.Load(); got != 2 {
		t.Errorf("Start issued %d certificates, want 2 (wildcard and base)", got)
	}
	srv := serveTLS(t, m)

	for _, tt := range []struct{ sni, wantSAN string }{
		{"app." + base, "*." + base},
		{"APP2." + strings.ToUpper(base), "*." + base},
		{"xn--bcher-kva." + base, "*." + base},
		{base, base},
	} {
		leaf, err := handshake(srv.addr, tt.sni, d.ca.CertPool())
		if err != nil {
			t.Errorf("handshake %s: %v", tt.sni, err)
			continue
		}
		if !slices.Equal(leaf.DNSNames, []string{tt.wantSAN}) {
			t.Errorf("%s: served %v, want [%s]", tt.sni, leaf.DNSNames, tt.wantSAN)
		}
	}
	if got := d.issuer.issued.Load(); got != 2 {
		t.Errorf("handshakes issued certificates: %d issued in all, want 2", got)
	}
	// Default storage is DataDir/certs.
	if sites := storedSites(t, d.storage); !sites["wildcard_."+base] || !sites[base] || len(sites) != 2 {
		t.Errorf("stored sites = %v, want the wildcard and the base", sites)
	}
}

func TestManagerRefusesOutsideBase(t *testing.T) {
	const base = "refuse.tollgate.test"
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "AllowName nil", true: "AllowName says yes"}[allow], func(t *testing.T) {
			d := newDevSetup(t, t.TempDir(), base)
			cfg := Config{BaseDomain: base, Storage: d.storage, Issuer: d.issuer}
			var mu sync.Mutex
			var asked []string
			if allow { // the local issuer must still refuse: it never signs outside the base
				cfg.AllowName = func(name string) bool {
					mu.Lock()
					asked = append(asked, name)
					mu.Unlock()
					return true
				}
			}
			m := startManager(t, cfg)
			srv := serveTLS(t, m)
			before := storedKeys(t, d.storage)

			refused := []string{
				"evil.test",
				"tollgate.test",
				"x" + base,
				base + ".evil.test",
				"app." + base + ".evil.test",
			}
			for _, name := range refused {
				if _, err := handshake(srv.addr, name, d.ca.CertPool()); err == nil {
					t.Errorf("handshake for %s succeeded", name)
				}
				if _, err := handshake(srv.addr, name, nil); err == nil {
					t.Errorf("handshake for %s succeeded without verification: a certificate was served", name)
				}
				errs := srv.errorsFor(name)
				if len(errs) == 0 {
					t.Errorf("%s: GetCertificate returned no error", name)
				} else if !allow && !errors.Is(errs[0], ErrNameNotAllowed) {
					t.Errorf("%s: err = %v, want ErrNameNotAllowed", name, errs[0])
				}
				if storedSites(t, d.storage)[name] {
					t.Errorf("a certificate was stored for refused %s", name)
				}
			}
			if !allow {
				// A deeper name under the base is refused unless a reservation
				// covers it (the local CA would sign it: it is under the base).
				if _, err := handshake(srv.addr, "a.b."+base, nil); err == nil {
					t.Errorf("handshake for unreserved a.b.%s succeeded", base)
				}
			}
			if after := storedKeys(t, d.storage); !slices.Equal(before, after) {
				t.Errorf("storage changed by refused handshakes:\nbefore %v\nafter  %v", before, after)
			}
			if got := d.issuer.issued.Load(); got != 2 {
				t.Errorf("Issue called %d times, want 2 (Start only): refusals must stop at PreCheck", got)
			}
			mu.Lock()
			defer mu.Unlock()
			if allow && !slices.Contains(asked, "evil.test") {
				t.Errorf("AllowName never asked about evil.test: %v", asked)
			}
			for _, n := range asked {
				if InBase(base, n) {
					t.Errorf("AllowName asked about base-domain name %s", n)
				}
			}
		})
	}
}

func TestManagerRefusesBadServerNames(t *testing.T) {
	const base = "sni.tollgate.test"
	d := newDevSetup(t, t.TempDir(), base)
	var asked []string
	var mu sync.Mutex
	m := startManager(t, Config{BaseDomain: base, Storage: d.storage, Issuer: d.issuer,
		AllowName: func(n string) bool { mu.Lock(); asked = append(asked, n); mu.Unlock(); return true }})
	srv := serveTLS(t, m)
	// A client that does not convert IDNs sends raw UTF-8 (RFC 6066 forbids it).
	for _, name := range []string{"bücher." + base, "a_b." + base, "*." + base} {
		if _, err := handshake(srv.addr, name, nil); err == nil {
			t.Errorf("handshake for %q succeeded", name)
		}
		errs := srv.errorsFor(name)
		if len(errs) == 0 || !errors.Is(errs[0], ErrBadServerName) {
			t.Errorf("%q: errors %v, want ErrBadServerName", name, errs)
		}
	}
	// No SNI at all: there is no default certificate.
	if _, err := handshake(srv.addr, "", nil); err == nil {
		t.Error("handshake without SNI succeeded")
	}
	if errs := srv.errorsFor(""); len(errs) == 0 || !errors.Is(errs[0], ErrNoServerName) {
		t.Errorf("no SNI: errors %v, want ErrNoServerName", errs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 0 {
		t.Errorf("AllowName asked about malformed names: %q", asked)
	}
}

func TestManagerIDNArrivesPunycoded(t *testing.T) {
	const base = "idn.tollgate.test"
	d := newDevSetup(t, t.TempDir(), base)
	var mu sync.Mutex
	var asked []string
	m := startManager(t, Config{BaseDomain: base, Storage: d.storage, Issuer: d.issuer,
		AllowName: func(n string) bool { mu.Lock(); asked = append(asked, n); mu.Unlock(); return false }})
	srv := serveTLS(t, m)
	client := httpsClient(t, srv.addr, d.ca.CertPool())

	// net/http converts the URL's IDN host to punycode for SNI, as browsers
	// and curl do; the certificate verifies for the Unicode name.
	_, port := splitPort(srv.addr)
	resp, err := client.Get("https://" + (&url.URL{Host: "bücher." + base + ":" + port}).Host + "/")
	if err != nil {
		t.Fatalf("GET bücher.%s: %v", base, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "xn--bcher-kva." + base; string(body) != want {
		t.Errorf("server saw SNI %q, want %q", body, want)
	}

	// A foreign IDN reaches AllowName as punycode, and is refused.
	if _, err := client.Get("https://münchen.example:" + port + "/"); err == nil {
		t.Error("GET münchen.example succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(asked, []string{"xn--mnchen-3ya.example"}) {
		t.Errorf("AllowName asked %q, want [xn--mnchen-3ya.example]", asked)
	}
}

func TestManagerRestartReusesCAAndCertificates(t *testing.T) {
	const base = "restart.tollgate.test"
	dir := t.TempDir()

	first := newDevSetup(t, dir, base)
	m1, err := New(Config{BaseDomain: base, DataDir: dir, Issuer: first.issuer, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv1 := serveTLS(t, m1)
	leaf1, err := handshake(srv1.addr, "app."+base, first.ca.CertPool())
	if err != nil {
		t.Fatal(err)
	}
	m1.Stop()
	if n := first.issuer.issued.Load(); n != 2 {
		t.Fatalf("first start issued %d, want 2", n)
	}

	second := newDevSetup(t, dir, base) // LoadOrCreateCA on the same dir
	if !second.ca.Certificate().Equal(first.ca.Certificate()) {
		t.Fatal("restart made a new CA")
	}
	m2 := startManager(t, Config{BaseDomain: base, DataDir: dir, Issuer: second.issuer})
	if n := second.issuer.issued.Load(); n != 0 {
		t.Errorf("restart issued %d certificates, want 0 (loaded from storage)", n)
	}
	srv2 := serveTLS(t, m2)
	// Verified with a pool built from the CA file, as curl --cacert would.
	leaf2, err := handshake(srv2.addr, "other."+base, second.ca.CertPool())
	if err != nil {
		t.Fatal(err)
	}
	if leaf1.SerialNumber.Cmp(leaf2.SerialNumber) != 0 {
		t.Errorf("restart serves a different wildcard certificate (serial %v, was %v)", leaf2.SerialNumber, leaf1.SerialNumber)
	}
}

func TestManagerRenewsExpiringCertificates(t *testing.T) {
	const base = "renew.tollgate.test"
	dir := t.TempDir()
	old := newDevSetup(t, dir, base)
	old.issuer.now = func() time.Time { return time.Now().Add(-80 * 24 * time.Hour) } // 10 of 90 days left
	m1 := startManager(t, Config{BaseDomain: base, DataDir: dir, Issuer: old.issuer})
	m1.Stop()

	fresh := newDevSetup(t, dir, base)
	m2 := startManager(t, Config{BaseDomain: base, DataDir: dir, Issuer: fresh.issuer})
	if n := fresh.issuer.issued.Load(); n != 2 {
		t.Errorf("restart renewed %d certificates, want 2 (both in the renewal window)", n)
	}
	srv := serveTLS(t, m2)
	leaf, err := handshake(srv.addr, "app."+base, fresh.ca.CertPool())
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(leaf.NotAfter); left < 80*24*time.Hour {
		t.Errorf("served certificate has %v left, want the renewed one", left)
	}
}

func TestManagerSingleLabelBase(t *testing.T) {
	// "*.localhost" is refused by OpenSSL and browsers, so names under a
	// one-label base get their own certificates, on demand.
	const base = "localhost"
	d := newDevSetup(t, t.TempDir(), base)
	m := startManager(t, Config{BaseDomain: base, Storage: d.storage, Issuer: d.issuer})
	if got := m.ManagedNames(); !slices.Equal(got, []string{"localhost"}) {
		t.Errorf("ManagedNames = %v", got)
	}
	if n := d.issuer.issued.Load(); n != 1 {
		t.Errorf("Start issued %d, want 1", n)
	}
	srv := serveTLS(t, m)

	// Concurrent first handshakes share one issuance.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			leaf, err := handshake(srv.addr, "app.localhost", d.ca.CertPool())
			if err == nil && !slices.Equal(leaf.DNSNames, []string{"app.localhost"}) {
				err = errors.New("served " + strings.Join(leaf.DNSNames, ","))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := d.issuer.issued.Load(); n != 2 {
		t.Errorf("issued %d in all, want 2 (base, then app.localhost once)", n)
	}
	if _, err := handshake(srv.addr, "localhost", d.ca.CertPool()); err != nil {
		t.Error(err)
	}
	if _, err := handshake(srv.addr, "a.b.localhost", nil); err == nil {
		t.Error("a.b.localhost got a certificate")
	}
	if sites := storedSites(t, d.storage); !sites["app.localhost"] || sites["a.b.localhost"] {
		t.Errorf("stored sites = %v", sites)
	}
}

// TestManagerCurl checks the CA file with a real client, curl (OpenSSL),
// for a wildcard base and for a one-label base.
func TestManagerCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required for this test (.ci/run installs it): ", err)
	}
	for _, base := range []string{"curl.tollgate.test", "localhost"} {
		t.Run(base, func(t *testing.T) {
			d := newDevSetup(t, t.TempDir(), base)
			m := startManager(t, Config{BaseDomain: base, Storage: d.storage, Issuer: d.issuer})
			srv := serveTLS(t, m)
			_, port := splitPort(srv.addr)
			for _, host := range []string{"app." + base, base} {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var out, stderr bytes.Buffer
				cmd := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--max-time", "20",
					"--cacert", d.ca.CertFile(),
					"--resolve", host+":"+port+":127.0.0.1",
					"https://"+host+":"+port+"/")
				cmd.Stdout, cmd.Stderr = &out, &stderr
				err := cmd.Run()
				cancel()
				if err != nil {
					t.Errorf("curl %s: %v: %s", host, err, stderr.String())
				} else if out.String() != host {
					t.Errorf("curl %s: body %q", host, out.String())
				}
			}
		})
	}
}

func TestManagerLifecycle(t *testing.T) {
	const base = "life.tollgate.test"
	d := newDevSetup(t, t.TempDir(), base)
	n0 := maintenanceGoroutines()
	m, err := New(Config{BaseDomain: base, Storage: d.storage, Issuer: d.issuer, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := maintenanceGoroutines(); got != n0 {
		t.Errorf("New started %d maintenance goroutines", got-n0)
	}
	if keys := storedKeys(t, d.storage); len(keys) != 0 {
		t.Errorf("New touched storage: %v", keys)
	}
	hello := &tls.ClientHelloInfo{ServerName: "app." + base}
	if _, err := m.GetCertificate(hello); !errors.Is(err, ErrNotStarted) {
		t.Errorf("GetCertificate before Start: %v, want ErrNotStarted", err)
	}

	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := maintenanceGoroutines(); got != n0+1 {
		t.Errorf("after Start: %d maintenance goroutines, want %d", got, n0+1)
	}
	if err := m.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	if c, err := m.GetCertificate(hello); err != nil || c == nil {
		t.Errorf("GetCertificate while running: %v", err)
	}

	m.Stop()
	m.Stop() // idempotent
	waitFor(t, "maintenance goroutine to end", func() bool { return maintenanceGoroutines() == n0 })
	if _, err := m.GetCertificate(hello); !errors.Is(err, ErrNotStarted) {
		t.Errorf("GetCertificate after Stop: %v, want ErrNotStarted", err)
	}
	if err := m.Start(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Stop: %v, want ErrStopped", err)
	}
}

func TestManagerStartFailureLeavesNothingRunning(t *testing.T) {
	const base = "fail.tollgate.test"
	d := newDevSetup(t, t.TempDir(), base)
	other := newCountingIssuer(t, d.ca, "other.test") // refuses every name of base
	n0 := maintenanceGoroutines()
	m, err := New(Config{BaseDomain: base, Storage: d.storage, Issuer: other, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Start(context.Background())
	if !errors.Is(err, ErrNameNotAllowed) {
		t.Fatalf("Start: %v, want ErrNameNotAllowed", err)
	}
	waitFor(t, "maintenance goroutine to end", func() bool { return maintenanceGoroutines() == n0 })
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: base}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("GetCertificate after failed Start: %v", err)
	}
	m.Stop()
}

func TestManagerStartCanceled(t *testing.T) {
	d := newDevSetup(t, t.TempDir(), "cancel.tollgate.test")
	m, err := New(Config{BaseDomain: "cancel.tollgate.test", Storage: d.storage, Issuer: d.issuer, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Start(ctx); err == nil {
		t.Fatal("Start with a canceled context succeeded")
	}
	m.Stop()
}

func TestNewValidation(t *testing.T) {
	d := newDevSetup(t, t.TempDir(), "dev.test")
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no base", Config{Storage: d.storage, Issuer: d.issuer}},
		{"IP base", Config{BaseDomain: "10.0.0.1", Storage: d.storage, Issuer: d.issuer}},
		{"unicode base", Config{BaseDomain: "bücher.test", Storage: d.storage, Issuer: d.issuer}},
		{"no issuer", Config{BaseDomain: "dev.test", Storage: d.storage}},
		{"no storage", Config{BaseDomain: "dev.test", Issuer: d.issuer}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	m, err := New(Config{BaseDomain: "Dev.Test.", DataDir: d.dir, Issuer: d.issuer})
	if err != nil {
		t.Fatal(err)
	}
	if m.BaseDomain() != "dev.test" {
		t.Errorf("BaseDomain = %q", m.BaseDomain())
	}
}

func BenchmarkGetCertificateWildcard(b *testing.B) {
	const base = "bench.tollgate.test"
	ca, err := LoadOrCreateCA(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	li, err := NewLocalIssuer(ca, LocalIssuerConfig{BaseDomain: base})
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(Config{BaseDomain: base, DataDir: b.TempDir(), Issuer: li})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Stop)
	hello := &tls.ClientHelloInfo{ServerName: "app." + base}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.GetCertificate(hello); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetCertificateRefused(b *testing.B) {
	m := &Manager{base: "bench.tollgate.test", wildcard: true, log: zap.NewNop()}
	m.run.Store(&running{})
	hello := &tls.ClientHelloInfo{ServerName: "evil.example"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.GetCertificate(hello); err == nil {
			b.Fatal("served")
		}
	}
}

// maintenanceGoroutines counts running certmagic cache maintenance loops.
func maintenanceGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("certmagic.(*Cache).maintainAssets("))
		}
		if len(buf) >= 64<<20 {
			return -1
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func splitPort(addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

// TestLocalCAReportsUnissuableReservations: with the local CA, a reserved
// domain outside the base domain can never get a certificate; its status
// says so (a failure the user must fix, naming --acme-ca) instead of
// "being provisioned" forever. Names under the base and other regions'
// reservations are not reported; a repeated snapshot reports nothing new.
func TestLocalCAReportsUnissuableReservations(t *testing.T) {
	const base = "local.tollgate.test"
	d := newDevSetup(t, t.TempDir(), base)
	var snap atomicSnapshot
	snap.Store(snapshotOf(t))
	reporter := &recordingReporter{}
	startManager(t, Config{BaseDomain: base, DataDir: d.dir, Issuer: d.issuer, Snapshot: snap.Load,
		Region: "us", Status: reporter, ReservationPoll: 20 * time.Millisecond})
	snap.Store(snapshotOf(t,
		snapshot.ReservedDomain{ID: "rd_1", AccountID: "acct_1", Domain: "app.customer.test", Region: "us"},
		snapshot.ReservedDomain{ID: "rd_2", AccountID: "acct_1", Domain: "eu.customer.test", Region: "eu"},
		snapshot.ReservedDomain{ID: "rd_3", AccountID: "acct_1", Domain: "mine." + base, Region: "us"},
	))
	waitWithin(t, 10*time.Second, "a status report for app.customer.test", func() bool {
		_, ok := reporter.last("app.customer.test")
		return ok
	})
	st, _ := reporter.last("app.customer.test")
	if st.JobErrorCode != StatusDNSError || !strings.Contains(st.JobMsg, "--acme-ca") || st.JobStartedAt.IsZero() {
		t.Fatalf("status = %+v", st)
	}
	snap.Store(snapshotOf(t,
		snapshot.ReservedDomain{ID: "rd_1", AccountID: "acct_1", Domain: "app.customer.test", Region: "us"},
	))
	time.Sleep(200 * time.Millisecond) // several polls
	reporter.mu.Lock()
	defer reporter.mu.Unlock()
	n := 0
	for _, r := range reporter.all {
		switch r.Domain {
		case "eu.customer.test", "mine." + base:
			t.Fatalf("reported %s: %+v", r.Domain, r)
		case "app.customer.test":
			n++
		}
	}
	if n != 1 {
		t.Fatalf("app.customer.test reported %d times, want once", n)
	}
}
