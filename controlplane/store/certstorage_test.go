package store

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane/internal/storetest"
)

func TestCertStorageKeys(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		cs := s.CertStorage(CertStorageOptions{})
		if _, err := cs.Load(ctx, "certificates/ca/a/a.crt"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load of a missing key = %v, want fs.ErrNotExist", err)
		}
		if _, err := cs.List(ctx, "certificates", true); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("List of an empty dir = %v, want fs.ErrNotExist", err)
		}
		keys := map[string]string{
			"certificates/ca/a.example/a.example.crt":   "cert-a",
			"certificates/ca/a.example/a.example.key":   "key-a",
			"certificates/ca/a.example0/x.crt":          "look-alike prefix",
			"certificates/ca/wildcard_.b/wildcard_.crt": "cert-b",
			"acme/ca/users/x@y/x.json":                  "account",
			"certificates0":                             "not under certificates/",
		}
		for k, v := range keys {
			if err := cs.Store(ctx, k, []byte(v)); err != nil {
				t.Fatalf("Store(%s): %v", k, err)
			}
		}
		if err := cs.Store(ctx, "certificates/ca/a.example/a.example.crt", []byte("cert-a2")); err != nil {
			t.Fatal(err)
		}
		if v, err := cs.Load(ctx, "certificates/ca/a.example/a.example.crt"); err != nil || string(v) != "cert-a2" {
			t.Fatalf("Load after overwrite = %q, %v", v, err)
		}
		if err := cs.Store(ctx, "", []byte("x")); !errors.Is(err, ErrBadCertKey) {
			t.Fatalf("Store of an empty key = %v, want ErrBadCertKey", err)
		}

		got, err := cs.List(ctx, "certificates/ca", false)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"certificates/ca/a.example", "certificates/ca/a.example0", "certificates/ca/wildcard_.b"}
		if !slices.Equal(got, want) {
			t.Fatalf("List non-recursive = %v, want %v", got, want)
		}
		got, err = cs.List(ctx, "certificates/ca/a.example", true)
		if err != nil {
			t.Fatal(err)
		}
		want = []string{"certificates/ca/a.example/a.example.crt", "certificates/ca/a.example/a.example.key"}
		if !slices.Equal(got, want) {
			t.Fatalf("List recursive = %v, want %v", got, want)
		}

		ki, err := cs.Stat(ctx, "certificates/ca/a.example/a.example.key")
		if err != nil || !ki.IsTerminal || ki.Size != int64(len("key-a")) || ki.Modified.IsZero() {
			t.Fatalf("Stat of a value = %+v, %v", ki, err)
		}
		ki, err = cs.Stat(ctx, "certificates/ca/a.example")
		if err != nil || ki.IsTerminal {
			t.Fatalf("Stat of a directory = %+v, %v", ki, err)
		}
		if _, err := cs.Stat(ctx, "certificates/ca/none"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Stat of a missing key = %v, want fs.ErrNotExist", err)
		}
		if !cs.Exists(ctx, "acme/ca") || cs.Exists(ctx, "acme/c") {
			t.Fatal("Exists: want true for a directory, false for a partial name")
		}

		if err := cs.Delete(ctx, "certificates/ca/a.example"); err != nil {
			t.Fatal(err)
		}
		if cs.Exists(ctx, "certificates/ca/a.example/a.example.key") {
			t.Fatal("Delete of a directory left a key under it")
		}
		if !cs.Exists(ctx, "certificates/ca/a.example0/x.crt") || !cs.Exists(ctx, "certificates0") {
			t.Fatal("Delete of a directory removed a look-alike key")
		}
		if err := cs.Delete(ctx, "certificates/ca/missing"); err != nil {
			t.Fatalf("Delete of a missing key = %v, want nil", err)
		}
	})
}

func TestCertStorageLockExcludes(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		a := s.CertStorage(CertStorageOptions{LockPoll: 10 * time.Millisecond})
		b := s.CertStorage(CertStorageOptions{LockPoll: 10 * time.Millisecond})
		var inside, maxInside atomic.Int32
		var wg sync.WaitGroup
		for i := range 6 {
			cs := a
			if i%2 == 1 {
				cs = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := cs.Lock(ctx, "issue_cert_x"); err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				n := inside.Add(1)
				if n > maxInside.Load() {
					maxInside.Store(n)
				}
				time.Sleep(5 * time.Millisecond) // hold it briefly, so overlap would show
				inside.Add(-1)
				if err := cs.Unlock(ctx, "issue_cert_x"); err != nil {
					t.Errorf("Unlock: %v", err)
				}
			}()
		}
		wg.Wait()
		if maxInside.Load() != 1 {
			t.Fatalf("%d holders inside the lock at once, want 1", maxInside.Load())
		}

		// A waiter gives up when its context ends.
		if err := a.Lock(ctx, "held"); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if err := b.Lock(short, "held"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock on a held lock = %v, want deadline exceeded", err)
		}
		if err := a.Unlock(ctx, "held"); err != nil {
			t.Fatal(err)
		}
		if err := b.Lock(ctx, "held"); err != nil {
			t.Fatalf("Lock after Unlock: %v", err)
		}
		_ = b.Unlock(ctx, "held")
	})
}

// TestCertStorageDeadHolder: a lock whose holder stopped refreshing it (a
// crashed edge) expires, and another holder takes it over; the dead
// holder's lease renewal then fails.
func TestCertStorageDeadHolder(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		ttl := 300 * time.Millisecond
		dead := s.CertStorage(CertStorageOptions{LockTTL: ttl})
		if ok, err := dead.tryLock(ctx, "issue_cert_y"); err != nil || !ok {
			t.Fatalf("tryLock = %v, %v", ok, err) // taken without the refresher: a holder that then died
		}
		live := s.CertStorage(CertStorageOptions{LockTTL: ttl, LockPoll: 20 * time.Millisecond})
		start := time.Now()
		if err := live.Lock(ctx, "issue_cert_y"); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < ttl/2 {
			t.Fatalf("took a live lock after %s; it should expire after ~%s", waited, ttl)
		}
		if err := dead.RenewLockLease(ctx, "issue_cert_y", ttl); !errors.Is(err, ErrLockLost) {
			t.Fatalf("RenewLockLease by the old holder = %v, want ErrLockLost", err)
		}
		// The live holder's refresher keeps it past its TTL.
		time.Sleep(2 * ttl)
		if ok, err := dead.tryLock(ctx, "issue_cert_y"); err != nil || ok {
			t.Fatalf("a refreshed lock was taken over: %v, %v", ok, err)
		}
		if err := live.Unlock(ctx, "issue_cert_y"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCertStorageSharedAcrossOpens: a second Store on the same database (a
// second edge, or a restart) sees what the first stored.
func TestCertStorageSharedAcrossOpens(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			s1, s2 := openTest(t, dsn), openTest(t, dsn)
			ctx := testCtx(t)
			if err := s1.CertStorage(CertStorageOptions{}).Store(ctx, "acme/k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			if v, err := s2.CertStorage(CertStorageOptions{}).Load(ctx, "acme/k"); err != nil || string(v) != "v" {
				t.Fatalf("Load from the second store = %q, %v", v, err)
			}
		})
	}
}

func TestCertificateStatus(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		if _, err := s.GetCertificateStatus(ctx, "app.example.com"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetCertificateStatus before a report = %v, want ErrNotFound", err)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		in := CertificateStatus{
			Domain: "app.example.com", Issuer: "acme.example-ca",
			JobErrorCode: CertErrorDNS, JobMsg: "no A record",
			JobStartedAt: now, JobRetriesAt: now.Add(time.Minute), Region: "eu",
		}
		if err := s.PutCertificateStatus(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetCertificateStatus(ctx, "app.example.com")
		if err != nil {
			t.Fatal(err)
		}
		if got.JobErrorCode != CertErrorDNS || !got.JobRetriesAt.Equal(in.JobRetriesAt) || !got.RenewsAt.IsZero() || got.UpdatedAt.IsZero() {
			t.Fatalf("status = %+v", got)
		}
		in.JobErrorCode, in.JobMsg, in.JobStartedAt, in.JobRetriesAt = "", "", time.Time{}, time.Time{}
		in.NotAfter, in.RenewsAt = now.Add(90*24*time.Hour), now.Add(60*24*time.Hour)
		if err := s.PutCertificateStatus(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err = s.GetCertificateStatus(ctx, "app.example.com")
		if err != nil || got.JobErrorCode != "" || !got.RenewsAt.Equal(in.RenewsAt) || !got.JobRetriesAt.IsZero() {
			t.Fatalf("status after success = %+v, %v", got, err)
		}
	})
}
