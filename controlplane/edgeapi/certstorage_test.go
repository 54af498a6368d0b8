package edgeapi_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/edgeapi"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/edge/certs"
	"github.com/tollgate/tollgate/snapshot"
)

// certEnv is a control plane's edge API over a real store, with a short
// lock TTL, on an httptest server.
type certEnv struct {
	store *store.Store
	url   string
	ttl   time.Duration
}

func newCertEnv(t *testing.T, dialect string, ttl time.Duration) *certEnv {
	t.Helper()
	st := cptest.OpenStore(t, storetest.DSN(t, dialect))
	core := controlplane.New(controlplane.Config{RateLimit: -1}, st)
	t.Cleanup(core.Close)
	edges := edgeapi.New(edgeapi.Config{Secret: testEdgeSecret, CertLockTTL: ttl}, core)
	hs := httptest.NewServer(edges.Handler())
	t.Cleanup(hs.Close)
	return &certEnv{store: st, url: hs.URL, ttl: ttl}
}

// cuttable is a transport that fails every request while cut: an edge
// that crashed or lost its network path to the control plane.
type cuttable struct {
	cut atomic.Bool
	rt  http.RoundTripper
}

func (c *cuttable) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.cut.Load() {
		return nil, errors.New("cut: no route to the control plane")
	}
	return c.rt.RoundTrip(r)
}

// client returns a storage client of the edge API (a new edge).
func (e *certEnv) client(t *testing.T, mirror certmagic.Storage) (*certs.ControlStorage, *cuttable) {
	t.Helper()
	tr := &cuttable{rt: http.DefaultTransport.(*http.Transport).Clone()}
	cs, err := certs.NewControlStorage(certs.ControlStorageConfig{
		URL: e.url, Secret: testEdgeSecret, Transport: tr, Timeout: 5 * time.Second,
		Retries: 1, LockPoll: 20 * time.Millisecond, Mirror: mirror,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.cut.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cs.Close(ctx)
	})
	return cs, tr
}

func eachCertDialect(t *testing.T, ttl time.Duration, fn func(t *testing.T, e *certEnv)) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) { fn(t, newCertEnv(t, d, ttl)) })
	}
}

// TestControlStorageValues: the client over the edge API has the storage
// semantics certmagic expects (certmagic.Storage), and two edges see each
// other's writes.
func TestControlStorageValues(t *testing.T) {
	eachCertDialect(t, time.Second, func(t *testing.T, e *certEnv) {
		ctx := cptest.Ctx(t)
		a, _ := e.client(t, nil)
		b, _ := e.client(t, nil)
		if _, err := a.Load(ctx, "certificates/ca/a.example/a.example.crt"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load of a missing key = %v, want fs.ErrNotExist", err)
		}
		if _, err := a.List(ctx, "certificates", true); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("List of an empty directory = %v, want fs.ErrNotExist", err)
		}
		if _, err := a.Stat(ctx, "certificates"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Stat of a missing key = %v, want fs.ErrNotExist", err)
		}
		vals := map[string]string{
			"certificates/ca/a.example/a.example.crt":   "cert-a",
			"certificates/ca/a.example/a.example.key":   "key-a",
			"certificates/ca/wildcard_.b/wildcard_.crt": "cert-b",
			"acme/ca/users/x@y.z/x.json":                "account",
			"last_clean.json":                           "{}",
		}
		for k, v := range vals {
			if err := a.Store(ctx, k, []byte(v)); err != nil {
				t.Fatalf("Store(%s): %v", k, err)
			}
		}
		for k, v := range vals {
			if got, err := b.Load(ctx, k); err != nil || string(got) != v {
				t.Fatalf("the other edge's Load(%s) = %q, %v; want %q", k, got, err, v)
			}
		}
		big := make([]byte, snapshot.MaxCertValue)
		if err := a.Store(ctx, "certificates/ca/big/big.crt", big); err != nil {
			t.Fatalf("Store of the largest value: %v", err)
		}
		if got, err := b.Load(ctx, "certificates/ca/big/big.crt"); err != nil || len(got) != len(big) {
			t.Fatalf("Load of the largest value: %d bytes, %v", len(got), err)
		}
		if err := a.Store(ctx, "certificates/ca/big/big.crt", make([]byte, snapshot.MaxCertValue+1)); !errors.Is(err, certs.ErrCertValueTooLarge) {
			t.Fatalf("Store over the limit = %v, want ErrCertValueTooLarge", err)
		}
		if err := a.Delete(ctx, "certificates/ca/big"); err != nil {
			t.Fatal(err)
		}

		got, err := b.List(ctx, "certificates/ca", false)
		if want := []string{"certificates/ca/a.example", "certificates/ca/wildcard_.b"}; err != nil || !slices.Equal(got, want) {
			t.Fatalf("List non-recursive = %v, %v; want %v", got, err, want)
		}
		got, err = b.List(ctx, "certificates/", true)
		if want := []string{"certificates/ca/a.example/a.example.crt", "certificates/ca/a.example/a.example.key",
			"certificates/ca/wildcard_.b/wildcard_.crt"}; err != nil || !slices.Equal(got, want) {
			t.Fatalf("List recursive = %v, %v; want %v", got, err, want)
		}
		ki, err := b.Stat(ctx, "certificates/ca/a.example/a.example.crt")
		if err != nil || !ki.IsTerminal || ki.Size != int64(len("cert-a")) || ki.Modified.IsZero() {
			t.Fatalf("Stat of a value = %+v, %v", ki, err)
		}
		if ki, err = b.Stat(ctx, "certificates/ca"); err != nil || ki.IsTerminal {
			t.Fatalf("Stat of a directory = %+v, %v", ki, err)
		}
		if !b.Exists(ctx, "certificates/ca/a.example") || b.Exists(ctx, "certificates/ca/c.example") {
			t.Fatal("Exists disagrees with Stat")
		}
		if err := b.Delete(ctx, "certificates/ca/a.example"); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, "certificates/ca/a.example"); err != nil {
			t.Fatalf("Delete of a missing key = %v, want nil", err)
		}
		if a.Exists(ctx, "certificates/ca/a.example/a.example.key") {
			t.Fatal("Delete of a directory left a key under it")
		}
	})
}

// TestControlStorageLockContention: a lock held by one edge blocks the
// other for as long as the holder lives (past the lock's TTL, thanks to
// renewal), and passes to it at Unlock.
func TestControlStorageLockContention(t *testing.T) {
	eachCertDialect(t, 300*time.Millisecond, func(t *testing.T, e *certEnv) {
		ctx := cptest.Ctx(t)
		a, _ := e.client(t, nil)
		b, _ := e.client(t, nil)
		if err := a.Lock(ctx, "issue_cert_*.example.com"); err != nil {
			t.Fatal(err)
		}
		// Within one process too, the lock is exclusive.
		short, cancel := context.WithTimeout(ctx, 3*e.ttl)
		err := a.Lock(short, "issue_cert_*.example.com")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a second Lock in the holder's process = %v, want a deadline error", err)
		}
		short, cancel = context.WithTimeout(ctx, 4*e.ttl)
		err = b.Lock(short, "issue_cert_*.example.com")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock held by a live edge for 4 TTLs = %v, want a deadline error", err)
		}
		if err := a.RenewLockLease(ctx, "issue_cert_*.example.com", time.Hour); err != nil {
			t.Fatalf("RenewLockLease by the holder: %v", err)
		}
		// Another name is independent.
		if err := b.Lock(ctx, "issue_cert_other.example.com"); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() { got <- b.Lock(ctx, "issue_cert_*.example.com") }()
		if err := a.Unlock(ctx, "issue_cert_*.example.com"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("Lock after the holder's Unlock: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Lock did not pass to the waiting edge after Unlock")
		}
		if err := a.RenewLockLease(ctx, "issue_cert_*.example.com", time.Minute); !errors.Is(err, certs.ErrLockLost) {
			t.Fatalf("RenewLockLease after Unlock = %v, want ErrLockLost", err)
		}
		for _, n := range []string{"issue_cert_*.example.com", "issue_cert_other.example.com"} {
			if err := b.Unlock(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Unlock(ctx, "never-locked"); err != nil {
			t.Fatalf("Unlock of a lock not held = %v", err)
		}
	})
}

// TestControlStorageLockExpiry: an edge that crashes (or loses its path to
// the control plane) while holding a lock stops renewing it; the lock
// expires after the TTL and another edge takes it; the first edge's
// renewal then fails with ErrLockLost.
func TestControlStorageLockExpiry(t *testing.T) {
	eachCertDialect(t, 500*time.Millisecond, func(t *testing.T, e *certEnv) {
		ctx := cptest.Ctx(t)
		a, aNet := e.client(t, nil)
		b, _ := e.client(t, nil)
		if err := a.Lock(ctx, "issue_cert_app.example.com"); err != nil {
			t.Fatal(err)
		}
		aNet.cut.Store(true)
		start := time.Now()
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := b.Lock(lctx, "issue_cert_app.example.com"); err != nil {
			t.Fatalf("Lock of a crashed edge's lock: %v", err)
		}
		if waited := time.Since(start); waited < e.ttl/2 {
			t.Fatalf("the crashed edge's lock passed after %v, before it could have expired (TTL %v)", waited, e.ttl)
		}
		aNet.cut.Store(false)
		if err := a.RenewLockLease(ctx, "issue_cert_app.example.com", time.Minute); !errors.Is(err, certs.ErrLockLost) {
			t.Fatalf("the crashed edge's RenewLockLease = %v, want ErrLockLost", err)
		}
		// The old holder's Unlock does not release the new holder's lock.
		if err := a.Unlock(ctx, "issue_cert_app.example.com"); err != nil {
			t.Fatal(err)
		}
		short, cancel2 := context.WithTimeout(ctx, 3*e.ttl)
		defer cancel2()
		if err := a.Lock(short, "issue_cert_app.example.com"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock while the new holder lives = %v, want a deadline error", err)
		}
	})
}

// TestControlStorageMirror: values read or written while the control plane
// answered are served from the edge's mirror while it does not.
func TestControlStorageMirror(t *testing.T) {
	e := newCertEnv(t, "sqlite", time.Second)
	ctx := cptest.Ctx(t)
	mirror := &certmagic.FileStorage{Path: t.TempDir()}
	a, aNet := e.client(t, mirror)
	b, _ := e.client(t, nil)
	if err := a.Store(ctx, "certificates/ca/a/a.crt", []byte("written")); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(ctx, "certificates/ca/b/b.crt", []byte("read")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Load(ctx, "certificates/ca/b/b.crt"); err != nil {
		t.Fatal(err)
	}
	aNet.cut.Store(true)
	for k, v := range map[string]string{"certificates/ca/a/a.crt": "written", "certificates/ca/b/b.crt": "read"} {
		if got, err := a.Load(ctx, k); err != nil || string(got) != v {
			t.Fatalf("Load(%s) while cut = %q, %v; want %q from the mirror", k, got, err, v)
		}
	}
	if keys, err := a.List(ctx, "certificates/ca", false); err != nil || len(keys) != 2 {
		t.Fatalf("List while cut = %v, %v", keys, err)
	}
	if _, err := a.Load(ctx, "certificates/ca/c/c.crt"); !errors.Is(err, certs.ErrControlUnavailable) {
		t.Fatalf("Load of a key the mirror lacks while cut = %v, want ErrControlUnavailable", err)
	}
	if err := a.Store(ctx, "certificates/ca/c/c.crt", []byte("x")); !errors.Is(err, certs.ErrControlUnavailable) {
		t.Fatalf("Store while cut = %v, want ErrControlUnavailable (writes never go to the mirror alone)", err)
	}
	if err := a.Lock(ctx, "issue_cert_c"); !errors.Is(err, certs.ErrControlUnavailable) {
		t.Fatalf("Lock while cut = %v, want ErrControlUnavailable", err)
	}
}

// TestCertStorageKeysRefused: keys that are not certmagic keys (path
// traversal, absolute, empty components, other characters, too long) are
// refused by the edge API with TG_5100 and by the client before sending;
// bodies over the limit get 413 TG_5102; a wrong secret 401.
func TestCertStorageKeysRefused(t *testing.T) {
	e := newCertEnv(t, "sqlite", time.Second)
	ctx := cptest.Ctx(t)
	c, _ := e.client(t, nil)
	if err := c.Store(ctx, "certificates/ok/ok.crt", []byte("v")); err != nil {
		t.Fatal(err)
	}
	bad := []string{
		"", "../users", "certificates/../../users", "certificates/./a", "/certificates/a", "certificates/a/",
		"certificates//a", `certificates\..\a`, "certificates/a b", "certificates/a%2f", "certificates/\x00",
		"certificates/é", strings.Repeat("a", snapshot.MaxCertKey+1), ".", "..",
	}
	for _, k := range bad {
		for _, r := range []struct{ method, path string }{
			{"GET", "/edge/v1/certstore/value"}, {"PUT", "/edge/v1/certstore/value"},
			{"DELETE", "/edge/v1/certstore/value"}, {"GET", "/edge/v1/certstore/stat"},
		} {
			res := rawCall(t, e, r.method, r.path+"?key="+url.QueryEscape(k), testEdgeSecret, "x")
			if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), string(codes.CertStoreKey)) {
				t.Errorf("%s %s key %q: %d %s, want 400 %s", r.method, r.path, k, res.Status, res.Body, codes.CertStoreKey)
			}
		}
		if _, err := c.Load(ctx, k); !errors.Is(err, snapshot.ErrBadCertKey) {
			t.Errorf("client Load(%q) = %v, want ErrBadCertKey", k, err)
		}
		if err := c.Store(ctx, k, []byte("x")); !errors.Is(err, snapshot.ErrBadCertKey) {
			t.Errorf("client Store(%q) = %v, want ErrBadCertKey", k, err)
		}
	}
	for _, p := range []string{"../", "a/../..", "/"} {
		res := rawCall(t, e, "GET", "/edge/v1/certstore/list?prefix="+url.QueryEscape(p), testEdgeSecret, "")
		if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), string(codes.CertStoreKey)) {
			t.Errorf("list prefix %q: %d %s", p, res.Status, res.Body)
		}
	}
	for _, body := range []string{
		`{"name":"a/b","token":"0123456789abcdef"}`, `{"name":"","token":"0123456789abcdef"}`,
		`{"name":"issue cert","token":"0123456789abcdef"}`, `{"name":"issue_cert_a","token":"short"}`,
		`{"name":"issue_cert_a","token":"0123456789abcdef/"}`,
	} {
		res := rawCall(t, e, "POST", "/edge/v1/certstore/locks/acquire", testEdgeSecret, body)
		if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), string(codes.CertStoreKey)) {
			t.Errorf("lock %s: %d %s", body, res.Status, res.Body)
		}
	}
	big := strings.Repeat("x", snapshot.MaxCertValue+1)
	res := rawCall(t, e, "PUT", "/edge/v1/certstore/value?key=certificates/big/big.crt", testEdgeSecret, big)
	if res.Status != http.StatusRequestEntityTooLarge || !strings.Contains(string(res.Body), string(codes.CertStoreTooLarge)) {
		t.Errorf("oversized value: %d %s", res.Status, res.Body)
	}
	for _, secret := range []string{"", "wrong-secret"} {
		res := rawCall(t, e, "GET", "/edge/v1/certstore/value?key=certificates/ok/ok.crt", secret, "")
		if res.Status != http.StatusUnauthorized || !strings.Contains(string(res.Body), string(codes.EdgeAuth)) {
			t.Errorf("secret %q: %d %s", secret, res.Status, res.Body)
		}
	}
	// Nothing reached the store but the one good key.
	keys, err := e.store.CertStorage(store.CertStorageOptions{}).List(ctx, "", true)
	if err != nil || !slices.Equal(keys, []string{"certificates/ok/ok.crt"}) {
		t.Fatalf("store keys after the refused requests: %v, %v", keys, err)
	}
}

// TestCertStatusThroughEdgeAPI: an edge's certificate status reports reach
// the store, where the reserved_domains API reads them.
func TestCertStatusThroughEdgeAPI(t *testing.T) {
	e := newCertEnv(t, "sqlite", time.Second)
	ctx := cptest.Ctx(t)
	c, _ := e.client(t, nil)
	now := time.Now().UTC().Truncate(time.Second)
	st := certs.Status{Domain: "app.example.com", NotAfter: now.Add(90 * 24 * time.Hour), RenewsAt: now.Add(60 * 24 * time.Hour),
		Issuer: "acme.example-directory", JobErrorCode: certs.StatusDNSError, JobMsg: "no A record",
		JobStartedAt: now, JobRetriesAt: now.Add(time.Minute)}
	if err := c.StatusReporter("eu").ReportCertificateStatus(ctx, st); err != nil {
		t.Fatal(err)
	}
	got, err := e.store.GetCertificateStatus(ctx, "app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got.Region != "eu" || !got.NotAfter.Equal(st.NotAfter) || !got.RenewsAt.Equal(st.RenewsAt) || got.Issuer != st.Issuer ||
		got.JobErrorCode != st.JobErrorCode || got.JobMsg != st.JobMsg || !got.JobStartedAt.Equal(st.JobStartedAt) ||
		!got.JobRetriesAt.Equal(st.JobRetriesAt) {
		t.Fatalf("stored status %+v, reported %+v", got, st)
	}
	if err := c.StatusReporter("nowhere").ReportCertificateStatus(ctx, st); err == nil {
		t.Fatal("a status from an unknown region was accepted")
	}
}

// rawCall sends one request to the edge API as is.
func rawCall(t *testing.T, e *certEnv, method, path, secret, body string) cptest.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(cptest.Ctx(t), method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var buf strings.Builder
	_, _ = io.Copy(&buf, res.Body)
	return cptest.Response{Status: res.StatusCode, Header: res.Header, Body: []byte(buf.String())}
}
