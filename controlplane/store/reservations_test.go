package store

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
)

func TestReservationNormalizeDomain(t *testing.T) {
	good := []struct{ in, want string }{
		{"app.example.com", "app.example.com"},
		{"App.Example.COM", "app.example.com"},
		{"app.example.com.", "app.example.com"},
		{"*.Example.com", "*.example.com"},
		{"*.example.com.", "*.example.com"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"*.bücher.example", "*.xn--bcher-kva.example"},
		{"ＡＰＰ.example.com", "app.example.com"}, // full-width letters map to ASCII (UTS #46)
		{"a-b.c1.example.io", "a-b.c1.example.io"},
		{strings.Repeat("a", 63) + ".example.com", strings.Repeat("a", 63) + ".example.com"},
	}
	for _, tc := range good {
		got, err := NormalizeDomain(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	long := strings.Repeat(strings.Repeat("a", 60)+".", 4) + "com" // 247 chars
	bad := []string{
		"", "localhost", "com", "1.2.3.4", "10.0.0.1.", "::1", "[::1]", "2001:db8::1",
		"example.com:443", "https://example.com", "http://app.example.com/", "example.com/path",
		"user@example.com", "a.*.example.com", "*example.com", "*.com", "*", "*.", "*.*.example.com",
		"a_b.example.com", "-a.example.com", "a-.example.com", "example.123", "exa mple.com",
		"example..com", ".example.com", "app.example.com..", strings.Repeat("a", 64) + ".example.com",
		long + ".example", "app.example.com?x", "app.example.com#x", "xn--zz.example",
	}
	for _, in := range bad {
		got, err := NormalizeDomain(in)
		var ce *codes.Error
		if !errors.As(err, &ce) || ce.Code != codes.DomainInvalid {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want codes.DomainInvalid", in, got, err)
		}
	}
}

func TestReservationNormalizeAddr(t *testing.T) {
	good := []struct{ in, want string }{
		{"1.tcp.example.com:20000", "1.tcp.example.com:20000"},
		{"1.TCP.Example.com:020000", "1.tcp.example.com:20000"},
		{"tcp.example.com.:22", "tcp.example.com:22"},
		{"203.0.113.5:80", "203.0.113.5:80"},
		{"[2001:DB8::1]:443", "[2001:db8::1]:443"},
		{"[::ffff:192.0.2.1]:22", "192.0.2.1:22"},
		{"localhost:9000", "localhost:9000"},
		{"h.example:65535", "h.example:65535"},
	}
	for _, tc := range good {
		got, err := NormalizeAddr(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	bad := []string{
		"", "example.com", ":80", "example.com:", "example.com:0", "example.com:65536", "example.com:+80",
		"example.com:-1", "example.com:http", "*.example.com:80", "[fe80::1%eth0]:80", "1.2.3:80",
		"tcp://example.com:80", "a_b.example.com:80", "2001:db8::1:80",
	}
	for _, in := range bad {
		got, err := NormalizeAddr(in)
		var ce *codes.Error
		if !errors.As(err, &ce) || ce.Code != codes.AddrInvalid {
			t.Errorf("NormalizeAddr(%q) = %q, %v; want codes.AddrInvalid", in, got, err)
		}
	}
}

func TestReservedDomainLifecycle(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		actor := Actor{AccountID: f.account.ID, PrincipalID: f.admin.ID, CredentialID: "ak_test"}
		base := rev(t, s)
		d, err := s.CreateReservedDomain(ctx, actor, f.account.ID, ReservedDomainCreate{
			Domain: "App.Example.com.", Region: "eu", Description: "site",
			CertPolicy: &CertPolicy{PrivateKeyType: "ecdsa"}, MinTLSVersion: "1.2", HSTS: "includesubdomains;max-age=600"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(d.ID, "rd_") || d.Domain != "app.example.com" || d.Region != "eu" ||
			d.CertPolicy == nil || *d.CertPolicy != (CertPolicy{"letsencrypt", "ecdsa"}) || d.MinTLSVersion != "1.2" ||
			d.HSTS != "max-age=600; includeSubDomains" {
			t.Fatalf("created %+v", d)
		}
		if r := rev(t, s); r != base+1 {
			t.Fatalf("revision %d, want %d", r, base+1)
		}
		evs := auditOf(t, s, f.account.ID, "reserved_domain_created.v0", d.ID)
		if len(evs) != 1 || evs[0].Revision != base+1 || evs[0].ActorID != f.admin.ID || evs[0].ActorCredentialID != "ak_test" {
			t.Fatalf("created events %+v", evs)
		}
		var payload map[string]any
		if err := json.Unmarshal(evs[0].Payload, &payload); err != nil || payload["domain"] != "app.example.com" || payload["region"] != "eu" {
			t.Fatalf("payload %s: %v", evs[0].Payload, err)
		}
		got, err := s.GetReservedDomain(ctx, f.account.ID, d.ID)
		if err != nil || got.Domain != d.Domain || *got.CertPolicy != *d.CertPolicy || !got.CreatedAt.Equal(d.CreatedAt) || got.HSTS != d.HSTS {
			t.Fatalf("get %+v, %v", got, err)
		}

		// The snapshot carries it, with the key type and TLS floor.
		snap, err := s.BuildSnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rd, ok := snap.ReservedDomain("app.example.com")
		if !ok || rd.ID != d.ID || rd.AccountID != f.account.ID || rd.Region != "eu" || rd.PrivateKeyType != "ecdsa" || rd.MinTLSVersion != "1.2" ||
			rd.HSTS != "max-age=600; includeSubDomains" {
			t.Fatalf("snapshot reservation %+v, %v", rd, ok)
		}

		// Region cannot change; the same region is no change.
		r0 := rev(t, s)
		_, err = s.UpdateReservedDomain(ctx, actor, f.account.ID, d.ID, ReservedDomainUpdate{Region: ptr("us")})
		wantCode(t, err, codes.RegionImmutable)
		if _, err := s.UpdateReservedDomain(ctx, actor, f.account.ID, d.ID, ReservedDomainUpdate{Region: ptr("eu"), Description: ptr("site")}); err != nil {
			t.Fatal(err)
		}
		if r := rev(t, s); r != r0 {
			t.Fatalf("refused or empty updates moved the revision %d -> %d", r0, r)
		}

		// Remove the policy and the TLS floor.
		u, err := s.UpdateReservedDomain(ctx, actor, f.account.ID, d.ID, ReservedDomainUpdate{SetCertPolicy: true, MinTLSVersion: ptr(""),
			HSTS: ptr("max-age=63072000; includeSubDomains; preload")})
		if err != nil || u.CertPolicy != nil || u.MinTLSVersion != "" || u.HSTS != "max-age=63072000; includeSubDomains; preload" {
			t.Fatalf("update = %+v, %v", u, err)
		}
		if r := rev(t, s); r != r0+1 {
			t.Fatalf("revision %d, want %d", r, r0+1)
		}
		if evs := auditOf(t, s, f.account.ID, "reserved_domain_updated.v0", d.ID); len(evs) != 1 || evs[0].Revision != r0+1 {
			t.Fatalf("updated events %+v", evs)
		}
		snap, err = s.BuildSnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rd, ok := snap.ReservedDomain("app.example.com"); !ok || rd.PrivateKeyType != "" || rd.MinTLSVersion != "" ||
			rd.HSTS != "max-age=63072000; includeSubDomains; preload" {
			t.Fatalf("snapshot after update %+v", rd)
		}

		// Release.
		if err := s.DeleteReservedDomain(ctx, actor, f.account.ID, d.ID); err != nil {
			t.Fatal(err)
		}
		if evs := auditOf(t, s, f.account.ID, "reserved_domain_deleted.v0", d.ID); len(evs) != 1 || evs[0].Revision != r0+2 {
			t.Fatalf("deleted events %+v", evs)
		}
		if _, err := s.GetReservedDomain(ctx, f.account.ID, d.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if err := s.DeleteReservedDomain(ctx, actor, f.account.ID, d.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		snap, err = s.BuildSnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := snap.ReservedDomain("app.example.com"); ok {
			t.Fatal("released domain still in the snapshot")
		}
	})
}

func TestReservedDomainOneAccountOnly(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		a, b := newFixture(t, s), newFixture(t, s)
		create := func(f fixture, domain string) (*ReservedDomain, error) {
			return s.CreateReservedDomain(ctx, f.actor, f.account.ID, ReservedDomainCreate{Domain: domain, Region: "us"})
		}
		mustCreate := func(f fixture, domain string) *ReservedDomain {
			t.Helper()
			d, err := create(f, domain)
			if err != nil {
				t.Fatalf("reserving %s: %v", domain, err)
			}
			return d
		}
		held := mustCreate(a, "app.example.com")
		mustCreate(a, "*.corp.example.com")
		mustCreate(b, "*.b.example.net")

		base := rev(t, s)
		cases := []struct {
			f      fixture
			domain string
			code   codes.Code
		}{
			{b, "app.example.com", codes.ReservedByOther},
			{b, "APP.example.com.", codes.ReservedByOther},
			{a, "app.example.com", codes.ReservedAlready},
			{b, "*.corp.example.com", codes.ReservedByOther},
			{b, "x.corp.example.com", codes.ReservedByOther},   // under a's wildcard
			{b, "y.x.corp.example.com", codes.ReservedByOther}, // any depth
			{b, "*.x.corp.example.com", codes.ReservedByOther}, // a narrower wildcard
			{b, "*.example.com", codes.ReservedByOther},        // would cover a's names
			{a, "*.example.net", codes.ReservedByOther},        // would cover b's wildcard
		}
		for _, tc := range cases {
			_, err := create(tc.f, tc.domain)
			wantConflictCode(t, err, tc.code)
			if !strings.Contains(err.Error(), "reserved") {
				t.Errorf("%s: message %q", tc.domain, err)
			}
		}
		if r := rev(t, s); r != base {
			t.Fatalf("refused reservations moved the revision %d -> %d", base, r)
		}
		// The wildcard's apex is not under it; the same account may nest.
		mustCreate(b, "corp.example.com")
		mustCreate(a, "deep.corp.example.com")
		// Once released, the name is free for the other account.
		if err := s.DeleteReservedDomain(ctx, a.actor, a.account.ID, held.ID); err != nil {
			t.Fatal(err)
		}
		mustCreate(b, "app.example.com")
		// Another account's reservation is invisible.
		if _, err := s.GetReservedDomain(ctx, a.account.ID, held.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get: %v", err)
		}
		list, more, err := s.ListReservedDomains(ctx, b.account.ID, Page{})
		var names []string
		for _, d := range list {
			names = append(names, d.Domain)
		}
		slices.Sort(names)
		if err != nil || more || strings.Join(names, " ") != "*.b.example.net app.example.com corp.example.com" {
			t.Fatalf("b's list = %v, %v, %v", names, more, err)
		}
	})
}

// TestConcurrentReservationsHaveOneWinner races many writers, on two Stores
// sharing one database (two control-plane processes), for one domain and
// one address: exactly one wins, the rest get a conflict, and exactly one
// unit of work commits.
func TestConcurrentReservationsHaveOneWinner(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			s1, s2 := openTest(t, dsn), openTest(t, dsn)
			ctx := testCtx(t)
			fs := []fixture{newFixture(t, s1), newFixture(t, s1)}
			base := rev(t, s1)
			const writers = 12
			var wg sync.WaitGroup
			type result struct {
				account string
				err     error
			}
			results := make(chan result, 2*writers)
			for w := 0; w < writers; w++ {
				s, f := s1, fs[w%2]
				if w%4 >= 2 {
					s = s2
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := s.CreateReservedDomain(ctx, f.actor, f.account.ID, ReservedDomainCreate{Domain: "race.example.com", Region: "us"})
					results <- result{f.account.ID, err}
					_, err = s.CreateReservedAddr(ctx, f.actor, f.account.ID, ReservedAddrCreate{Addr: "tcp.example.com:20000", Region: "us"})
					results <- result{f.account.ID, err}
				}()
			}
			wg.Wait()
			close(results)
			wins := 0
			for r := range results {
				if r.err == nil {
					wins++
					continue
				}
				var ce *ConflictError
				if !errors.As(r.err, &ce) || (ce.Code != codes.ReservedByOther && ce.Code != codes.ReservedAlready) {
					t.Fatalf("loser got %v", r.err)
				}
			}
			if wins != 2 {
				t.Fatalf("%d winners, want one per name", wins)
			}
			if r := rev(t, s2); r != base+2 {
				t.Fatalf("revision %d, want %d", r, base+2)
			}
			snap, err := s2.BuildSnapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rd, ok1 := snap.ReservedDomain("race.example.com")
			ra, ok2 := snap.ReservedAddr("tcp.example.com:20000")
			if !ok1 || !ok2 || len(snap.Data().ReservedDomains) != 1 || len(snap.Data().ReservedAddrs) != 1 {
				t.Fatalf("snapshot reservations %+v %+v", snap.Data().ReservedDomains, snap.Data().ReservedAddrs)
			}
			if n := len(auditOf(t, s1, rd.AccountID, "reserved_domain_created.v0", rd.ID)); n != 1 {
				t.Fatalf("%d domain creation events", n)
			}
			if n := len(auditOf(t, s1, ra.AccountID, "reserved_addr_created.v0", ra.ID)); n != 1 {
				t.Fatalf("%d address creation events", n)
			}
		})
	}
}

func TestReservedAddrPoolAssignment(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		a, b := newFixture(t, s), newFixture(t, s)
		pool := &AddrPool{Host: "1.TCP.eu.example.com", FirstPort: 20000, LastPort: 20002}
		create := func(f fixture, addr string) (*ReservedAddr, error) {
			return s.CreateReservedAddr(ctx, f.actor, f.account.ID, ReservedAddrCreate{Addr: addr, Region: "eu", Pool: pool})
		}
		// An explicit address inside the pool counts as taken.
		if _, err := create(b, "1.tcp.eu.example.com:20001"); err != nil {
			t.Fatal(err)
		}
		first, err := create(a, "")
		if err != nil || first.Addr != "1.tcp.eu.example.com:20000" || first.Region != "eu" || !strings.HasPrefix(first.ID, "ra_") {
			t.Fatalf("first = %+v, %v", first, err)
		}
		second, err := create(a, "")
		if err != nil || second.Addr != "1.tcp.eu.example.com:20002" {
			t.Fatalf("second = %+v, %v", second, err)
		}
		base := rev(t, s)
		_, err = create(b, "")
		wantConflictCode(t, err, codes.AddrPoolExhausted)
		_, err = create(b, "1.tcp.eu.example.com:20000")
		wantConflictCode(t, err, codes.ReservedByOther)
		_, err = create(a, "1.TCP.eu.example.com:20000")
		wantConflictCode(t, err, codes.ReservedAlready)
		_, err = s.CreateReservedAddr(ctx, a.actor, a.account.ID, ReservedAddrCreate{Region: "us"})
		wantCode(t, err, codes.AddrRequired)
		_, err = s.UpdateReservedAddr(ctx, a.actor, a.account.ID, first.ID, ReservedAddrUpdate{Region: ptr("us")})
		wantCode(t, err, codes.RegionImmutable)
		_, err = s.CreateReservedAddr(ctx, a.actor, a.account.ID, ReservedAddrCreate{Addr: "x.example.com:1", Region: "mars"})
		wantCode(t, err, codes.RegionInvalid)
		if r := rev(t, s); r != base {
			t.Fatalf("refused requests moved the revision %d -> %d", base, r)
		}
		// Releasing frees the port for the next assignment.
		if err := s.DeleteReservedAddr(ctx, a.actor, a.account.ID, first.ID); err != nil {
			t.Fatal(err)
		}
		again, err := create(b, "")
		if err != nil || again.Addr != first.Addr || again.AccountID != b.account.ID {
			t.Fatalf("again = %+v, %v", again, err)
		}
		u, err := s.UpdateReservedAddr(ctx, b.actor, b.account.ID, again.ID, ReservedAddrUpdate{Description: ptr("db"), Region: ptr("eu")})
		if err != nil || u.Description != "db" || u.Addr != again.Addr {
			t.Fatalf("update = %+v, %v", u, err)
		}
		for _, typ := range []string{"reserved_addr_created.v0", "reserved_addr_updated.v0"} {
			if evs := auditOf(t, s, b.account.ID, typ, again.ID); len(evs) != 1 || evs[0].ActorID != b.admin.ID {
				t.Fatalf("%s events %+v", typ, evs)
			}
		}
		if evs := auditOf(t, s, a.account.ID, "reserved_addr_deleted.v0", first.ID); len(evs) != 1 {
			t.Fatalf("deleted events %+v", evs)
		}
		// A broken pool is a configuration error, not a reservation.
		for _, p := range []AddrPool{{Host: "h.example", FirstPort: 0, LastPort: 10}, {Host: "h.example", FirstPort: 10, LastPort: 9},
			{Host: "h.example", FirstPort: 1, LastPort: 65536}, {Host: "bad host", FirstPort: 1, LastPort: 2}} {
			if _, err := ValidateAddrPool(p); err == nil {
				t.Errorf("ValidateAddrPool(%+v) accepted it", p)
			}
		}
	})
}

func TestReservationValidationChangesNothing(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		d, err := s.CreateReservedDomain(ctx, f.actor, f.account.ID, ReservedDomainCreate{Domain: "ok.example.com", Region: "us"})
		if err != nil {
			t.Fatal(err)
		}
		base := rev(t, s)
		cases := []struct {
			name string
			code codes.Code
			fn   func() error
		}{
			{"bad domain", codes.DomainInvalid, func() error {
				_, err := s.CreateReservedDomain(ctx, f.actor, f.account.ID, ReservedDomainCreate{Domain: "1.2.3.4", Region: "us"})
				return err
			}},
			{"no region", codes.RegionInvalid, func() error {
				_, err := s.CreateReservedDomain(ctx, f.actor, f.account.ID, ReservedDomainCreate{Domain: "a.example.com"})
				return err
			}},
			{"description", codes.APIDescriptionLength, func() error {
				_, err := s.CreateReservedDomain(ctx, f.actor, f.account.ID, ReservedDomainCreate{Domain: "a.example.com", Region: "us", Description: strings.Repeat("d", 256)})
				return err
			}},
			{"metadata", codes.APIMetadataLength, func() error {
				_, err := s.UpdateReservedDomain(ctx, f.actor, f.account.ID, d.ID, ReservedDomainUpdate{Metadata: ptr(strings.Repeat("m", 4097))})
				return err
			}},
			{"authority", codes.CertPolicyInvalid, func() error {
				_, err := s.CreateReservedDomain(ctx, f.actor, f.account.ID, ReservedDomainCreate{Domain: "a.example.com", Region: "us", CertPolicy: &CertPolicy{Authority: "zerossl"}})
				return err
			}},
			{"key type", codes.CertPolicyInvalid, func() error {
				_, err := s.UpdateReservedDomain(ctx, f.actor, f.account.ID, d.ID, ReservedDomainUpdate{SetCertPolicy: true, CertPolicy: &CertPolicy{PrivateKeyType: "dsa"}})
				return err
			}},
			{"tls version", codes.MinTLSVersionInvalid, func() error {
				_, err := s.UpdateReservedDomain(ctx, f.actor, f.account.ID, d.ID, ReservedDomainUpdate{MinTLSVersion: ptr("1.4")})
				return err
			}},
			{"hsts create", codes.HSTSInvalid, func() error {
				_, err := s.CreateReservedDomain(ctx, f.actor, f.account.ID, ReservedDomainCreate{Domain: "a.example.com", Region: "us", HSTS: "max-age=63072001"})
				return err
			}},
			{"hsts preload", codes.HSTSInvalid, func() error {
				_, err := s.UpdateReservedDomain(ctx, f.actor, f.account.ID, d.ID, ReservedDomainUpdate{HSTS: ptr("max-age=31536000; preload")})
				return err
			}},
			{"addr", codes.AddrInvalid, func() error {
				_, err := s.CreateReservedAddr(ctx, f.actor, f.account.ID, ReservedAddrCreate{Addr: "x.example.com", Region: "us"})
				return err
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				wantCode(t, tc.fn(), tc.code)
			})
		}
		if r := rev(t, s); r != base {
			t.Fatalf("refused requests moved the revision %d -> %d", base, r)
		}
		got, err := s.GetReservedDomain(ctx, f.account.ID, d.ID)
		if err != nil || got.CertPolicy != nil || got.Metadata != "" || got.MinTLSVersion != "" || got.HSTS != "" {
			t.Fatalf("domain changed: %+v, %v", got, err)
		}
	})
}
