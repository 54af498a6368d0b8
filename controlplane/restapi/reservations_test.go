package restapi_test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/restapi"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// keysOf returns an object's keys, sorted.
func keysOf(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, " ")
}

func TestReservedDomainsAPI(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		before := e.Revision()
		created := e.Must(201, e.Call("POST", "/reserved_domains", e.Admin, map[string]any{
			"domain": "Bücher.Example.com.", "region": "eu", "description": "shop", "metadata": `{"x":1}`, "min_tls_version": "1.2"}))
		id := cptest.Str(created, "id")
		if !strings.HasPrefix(id, "rd_") || cptest.Str(created, "uri") != e.HTTP.URL+"/reserved_domains/"+id ||
			cptest.Str(created, "domain") != "xn--bcher-kva.example.com" || cptest.Str(created, "region") != "eu" ||
			cptest.Str(created, "description") != "shop" || cptest.Str(created, "metadata") != `{"x":1}` || cptest.Str(created, "min_tls_version") != "1.2" {
			t.Fatalf("created = %v", created)
		}
		const wantKeys = "acme_challenge_cname_target certificate certificate_management_policy certificate_management_status " +
			"cname_target created_at description domain hsts id metadata min_tls_version region uri"
		if keysOf(created) != wantKeys {
			t.Fatalf("fields %q, want %q", keysOf(created), wantKeys)
		}
		if p, _ := created["certificate_management_policy"].(map[string]any); cptest.Str(p, "authority") != "letsencrypt" || cptest.Str(p, "private_key_type") != "rsa" {
			t.Fatalf("default policy = %v", created["certificate_management_policy"])
		}
		if created["certificate"] != nil || created["cname_target"] != nil {
			t.Fatalf("created = %v", created)
		}
		// No edge has reported yet: provisioning started at creation.
		if st, _ := created["certificate_management_status"].(map[string]any); st == nil || st["renews_at"] != nil {
			t.Fatalf("status = %v", created["certificate_management_status"])
		} else if job, _ := st["provisioning_job"].(map[string]any); job == nil || job["error_code"] != nil || cptest.Str(job, "started_at") != cptest.Str(created, "created_at") {
			t.Fatalf("provisioning job = %v", st["provisioning_job"])
		}
		if e.Revision() != before+1 {
			t.Fatalf("revision %d, want %d", e.Revision(), before+1)
		}
		ev := e.WantAuditBy("reserved_domain_created.v0", id)
		if ev.Revision != before+1 {
			t.Fatalf("audit revision %d, want %d", ev.Revision, before+1)
		}

		got := e.Must(200, e.Call("GET", "/reserved_domains/"+id, e.Admin, nil))
		if cptest.Str(got, "domain") != "xn--bcher-kva.example.com" || cptest.Str(got, "created_at") != cptest.Str(created, "created_at") {
			t.Fatalf("got = %v", got)
		}
		// The feed's snapshot carries the reservation.
		snap, err := e.Core.Snapshot(cptest.Ctx(t), before)
		if err != nil {
			t.Fatal(err)
		}
		if rd, ok := snap.ReservedDomain("xn--bcher-kva.example.com"); !ok || rd.AccountID != e.Dev.AccountID || rd.Region != "eu" ||
			rd.PrivateKeyType != "rsa" || rd.MinTLSVersion != "1.2" {
			t.Fatalf("snapshot reservation %+v, %v", rd, ok)
		}

		// Defaults: region us; a null policy means no certificate management.
		plain := e.Must(201, e.Call("POST", "/reserved_domains", e.Admin, `{"domain":"*.apps.example.com","certificate_management_policy":null}`))
		if cptest.Str(plain, "region") != "us" || plain["certificate_management_policy"] != nil || plain["min_tls_version"] != nil || plain["hsts"] != nil ||
			cptest.Str(plain, "domain") != "*.apps.example.com" {
			t.Fatalf("plain = %v", plain)
		}
		list := e.Must(200, e.Call("GET", "/reserved_domains", e.Admin, nil))
		items, _ := list["reserved_domains"].([]any)
		if len(items) != 2 || list["next_page_uri"] != nil || cptest.Str(list, "uri") != e.HTTP.URL+"/reserved_domains" {
			t.Fatalf("list = %v", list)
		}
		page := e.Must(200, e.Call("GET", "/reserved_domains?limit=1", e.Admin, nil))
		if items, _ := page["reserved_domains"].([]any); len(items) != 1 || page["next_page_uri"] == nil {
			t.Fatalf("page = %v", page)
		}

		// Update: key type, TLS floor; region may only repeat.
		upd := e.Must(200, e.Call("PATCH", "/reserved_domains/"+id, e.Admin, map[string]any{
			"certificate_management_policy": map[string]any{"authority": "letsencrypt", "private_key_type": "ecdsa"},
			"min_tls_version":               "1.3", "region": "eu"}))
		if p, _ := upd["certificate_management_policy"].(map[string]any); cptest.Str(p, "private_key_type") != "ecdsa" || cptest.Str(upd, "min_tls_version") != "1.3" ||
			cptest.Str(upd, "description") != "shop" {
			t.Fatalf("updated = %v", upd)
		}
		e.WantAuditBy("reserved_domain_updated.v0", id)
		r0 := e.Revision()
		cptest.WantError(t, e.Call("PATCH", "/reserved_domains/"+id, e.Admin, map[string]any{"region": "us"}), 400, string(codes.RegionImmutable))
		e.Must(200, e.Call("PATCH", "/reserved_domains/"+id, e.Admin, map[string]any{"description": "shop"}))
		if e.Revision() != r0 {
			t.Fatal("a refused or empty update moved the revision")
		}
		upd = e.Must(200, e.Call("PATCH", "/reserved_domains/"+id, e.Admin, `{"min_tls_version":null}`))
		if v, ok := upd["min_tls_version"]; !ok || v != nil {
			t.Fatalf("min_tls_version after null = %v", upd["min_tls_version"])
		}

		// HSTS: set, carried by the snapshot, left alone by other updates,
		// removed by null.
		hstsRev := e.Revision()
		upd = e.Must(200, e.Call("PATCH", "/reserved_domains/"+id, e.Admin, `{"hsts":{"max_age":63072000,"include_subdomains":true,"preload":true}}`))
		if h, _ := upd["hsts"].(map[string]any); h["max_age"] != float64(63072000) || h["include_subdomains"] != true || h["preload"] != true {
			t.Fatalf("hsts after update = %v", upd["hsts"])
		}
		if snap, err := e.Core.Snapshot(cptest.Ctx(t), hstsRev); err != nil {
			t.Fatal(err)
		} else if rd, _ := snap.ReservedDomain("xn--bcher-kva.example.com"); rd == nil || rd.HSTS != "max-age=63072000; includeSubDomains; preload" {
			t.Fatalf("snapshot reservation %+v", rd)
		}
		upd = e.Must(200, e.Call("PATCH", "/reserved_domains/"+id, e.Admin, `{"description":"shop2"}`))
		if h, _ := upd["hsts"].(map[string]any); h["max_age"] != float64(63072000) {
			t.Fatalf("hsts after another update = %v", upd["hsts"])
		}
		upd = e.Must(200, e.Call("PATCH", "/reserved_domains/"+id, e.Admin, `{"hsts":{"max_age":0}}`))
		if h, _ := upd["hsts"].(map[string]any); h["max_age"] != float64(0) || h["include_subdomains"] != false {
			t.Fatalf("hsts max_age 0 = %v", upd["hsts"])
		}
		upd = e.Must(200, e.Call("PATCH", "/reserved_domains/"+id, e.Admin, `{"hsts":null}`))
		if v, ok := upd["hsts"]; !ok || v != nil {
			t.Fatalf("hsts after null = %v", upd["hsts"])
		}
		withHSTS := e.Must(201, e.Call("POST", "/reserved_domains", e.Admin, `{"domain":"hsts.example.com","hsts":{"max_age":600}}`))
		if h, _ := withHSTS["hsts"].(map[string]any); h["max_age"] != float64(600) || h["preload"] != false {
			t.Fatalf("created with hsts = %v", withHSTS)
		}
		e.Must(204, e.Call("DELETE", "/reserved_domains/"+cptest.Str(withHSTS, "id"), e.Admin, nil))
		e.Must(204, e.Call("DELETE", "/reserved_domains/"+id+"/certificate_management_policy", e.Admin, nil))
		if got := e.Must(200, e.Call("GET", "/reserved_domains/"+id, e.Admin, nil)); got["certificate_management_policy"] != nil {
			t.Fatalf("policy after delete = %v", got["certificate_management_policy"])
		}
		e.Must(204, e.Call("DELETE", "/reserved_domains/"+id+"/certificate", e.Admin, nil))

		// Release.
		snapRev := e.Revision()
		e.Must(204, e.Call("DELETE", "/reserved_domains/"+id, e.Admin, nil))
		e.WantAuditBy("reserved_domain_deleted.v0", id)
		cptest.WantError(t, e.Call("GET", "/reserved_domains/"+id, e.Admin, nil), 404, string(codes.APINotFound))
		cptest.WantError(t, e.Call("DELETE", "/reserved_domains/"+id, e.Admin, nil), 404, string(codes.APINotFound))
		snap, err = e.Core.Snapshot(cptest.Ctx(t), snapRev)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := snap.ReservedDomain("xn--bcher-kva.example.com"); ok {
			t.Fatal("released domain still in the snapshot")
		}
	})
}

func TestReservationsOfAnotherAccount(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		_, otherKey := e.OtherAccount("other")
		d := e.Must(201, e.Call("POST", "/reserved_domains", e.Admin, map[string]any{"domain": "app.example.com"}))
		a := e.Must(201, e.Call("POST", "/reserved_addrs", e.Admin, map[string]any{"addr": "tcp.example.com:20000"}))
		w := e.Must(201, e.Call("POST", "/reserved_domains", otherKey, map[string]any{"domain": "*.other.example.org"}))
		before := e.Revision()
		cases := []struct {
			name, key, path string
			body            any
			status          int
			code            codes.Code
		}{
			{"domain of another", otherKey, "/reserved_domains", map[string]any{"domain": "APP.example.com."}, 409, codes.ReservedByOther},
			{"domain again", e.Admin, "/reserved_domains", map[string]any{"domain": "app.example.com", "region": "eu"}, 409, codes.ReservedAlready},
			{"under another's wildcard", e.Admin, "/reserved_domains", map[string]any{"domain": "x.other.example.org"}, 409, codes.ReservedByOther},
			{"over another's name", otherKey, "/reserved_domains", map[string]any{"domain": "*.example.com"}, 409, codes.ReservedByOther},
			{"addr of another", otherKey, "/reserved_addrs", map[string]any{"addr": "TCP.example.com:20000"}, 409, codes.ReservedByOther},
			{"addr again", e.Admin, "/reserved_addrs", map[string]any{"addr": "tcp.example.com:020000"}, 409, codes.ReservedAlready},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				cptest.WantError(t, e.Call("POST", tc.path, tc.key, tc.body), tc.status, string(tc.code))
			})
		}
		if e.Revision() != before {
			t.Fatal("refused reservations moved the revision")
		}
		// Another account's reservations are invisible and untouchable.
		for _, p := range []string{"/reserved_domains/" + cptest.Str(d, "id"), "/reserved_addrs/" + cptest.Str(a, "id")} {
			cptest.WantError(t, e.Call("GET", p, otherKey, nil), 404, string(codes.APINotFound))
			cptest.WantError(t, e.Call("PATCH", p, otherKey, map[string]any{"description": "mine"}), 404, string(codes.APINotFound))
			cptest.WantError(t, e.Call("DELETE", p, otherKey, nil), 404, string(codes.APINotFound))
		}
		cptest.WantError(t, e.Call("GET", "/reserved_domains/"+cptest.Str(w, "id"), e.Admin, nil), 404, string(codes.APINotFound))
		if items, _ := e.Must(200, e.Call("GET", "/reserved_domains", otherKey, nil))["reserved_domains"].([]any); len(items) != 1 {
			t.Fatalf("other account lists %d domains", len(items))
		}
		if e.Revision() != before {
			t.Fatal("refused requests moved the revision")
		}
	})
}

// TestReservationRaceThroughAPI sends concurrent reservations of one domain
// from two accounts: exactly one gets 201, every other gets 409.
func TestReservationRaceThroughAPI(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		_, otherKey := e.OtherAccount("racer")
		before := e.Revision()
		const n = 10
		statuses := make(chan int, n)
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			key := e.Admin
			if i%2 == 1 {
				key = otherKey
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest("POST", e.HTTP.URL+"/reserved_domains", bytes.NewReader([]byte(`{"domain":"race.example.com"}`)))
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+key)
				res, err := e.HTTP.Client().Do(req)
				if err != nil {
					errs <- err
					return
				}
				res.Body.Close()
				statuses <- res.StatusCode
			}()
		}
		wg.Wait()
		close(statuses)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var got []int
		for s := range statuses {
			got = append(got, s)
		}
		slices.Sort(got)
		want := append([]int{201}, slices.Repeat([]int{409}, n-1)...)
		if !slices.Equal(got, want) {
			t.Fatalf("statuses %v, want one 201 and %d 409", got, n-1)
		}
		if e.Revision() != before+1 {
			t.Fatalf("revision %d, want %d", e.Revision(), before+1)
		}
	})
}

func TestReservedAddrsAPI(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			e := cptest.NewEnv(t, storetest.DSN(t, d), cptest.Config{
				DefaultRegion: "eu",
				TCPAddrPools:  map[string]restapi.TCPAddrPool{"eu": {Host: "1.tcp.eu.example.com", FirstPort: 20000, LastPort: 20001}},
			})
			before := e.Revision()
			first := e.Must(201, e.Call("POST", "/reserved_addrs", e.Admin, map[string]any{"description": "db"}))
			id := cptest.Str(first, "id")
			if !strings.HasPrefix(id, "ra_") || cptest.Str(first, "addr") != "1.tcp.eu.example.com:20000" || cptest.Str(first, "region") != "eu" ||
				cptest.Str(first, "uri") != e.HTTP.URL+"/reserved_addrs/"+id || cptest.Str(first, "description") != "db" {
				t.Fatalf("first = %v", first)
			}
			const wantKeys = "addr created_at description endpoint_configuration id metadata region uri"
			if keysOf(first) != wantKeys {
				t.Fatalf("fields %q, want %q", keysOf(first), wantKeys)
			}
			if ev := e.WantAuditBy("reserved_addr_created.v0", id); ev.Revision != before+1 {
				t.Fatalf("audit revision %d, want %d", ev.Revision, before+1)
			}
			second := e.Must(201, e.Call("POST", "/reserved_addrs", e.Admin, map[string]any{"region": "eu"}))
			if cptest.Str(second, "addr") != "1.tcp.eu.example.com:20001" {
				t.Fatalf("second = %v", second)
			}
			// An explicit address outside any pool, in a region without one.
			own := e.Must(201, e.Call("POST", "/reserved_addrs", e.Admin, map[string]any{"addr": "Tcp.Example.com:9000", "region": "us"}))
			if cptest.Str(own, "addr") != "tcp.example.com:9000" || cptest.Str(own, "region") != "us" {
				t.Fatalf("own = %v", own)
			}
			r0 := e.Revision()
			cptest.WantError(t, e.Call("POST", "/reserved_addrs", e.Admin, map[string]any{}), 409, string(codes.AddrPoolExhausted))
			cptest.WantError(t, e.Call("POST", "/reserved_addrs", e.Admin, map[string]any{"region": "us"}), 400, string(codes.AddrRequired))
			cptest.WantError(t, e.Call("POST", "/reserved_addrs", e.Admin, map[string]any{"addr": "1.tcp.eu.example.com:20001", "region": "us"}),
				400, string(codes.AddrInvalid))
			cptest.WantError(t, e.Call("PATCH", "/reserved_addrs/"+id, e.Admin, map[string]any{"region": "us"}), 400, string(codes.RegionImmutable))
			if e.Revision() != r0 {
				t.Fatal("refused requests moved the revision")
			}
			upd := e.Must(200, e.Call("PATCH", "/reserved_addrs/"+id, e.Admin, map[string]any{"metadata": "m", "region": "eu"}))
			if cptest.Str(upd, "metadata") != "m" || cptest.Str(upd, "description") != "db" || cptest.Str(upd, "addr") != cptest.Str(first, "addr") {
				t.Fatalf("updated = %v", upd)
			}
			e.WantAuditBy("reserved_addr_updated.v0", id)
			list := e.Must(200, e.Call("GET", "/reserved_addrs", e.Admin, nil))
			if items, _ := list["reserved_addrs"].([]any); len(items) != 3 || cptest.Str(list, "uri") != e.HTTP.URL+"/reserved_addrs" {
				t.Fatalf("list = %v", list)
			}
			snap, err := e.Core.Snapshot(cptest.Ctx(t), 0)
			if err != nil {
				t.Fatal(err)
			}
			if ra, ok := snap.ReservedAddr("1.tcp.eu.example.com:20000"); !ok || ra.ID != id || ra.Region != "eu" || ra.AccountID != e.Dev.AccountID {
				t.Fatalf("snapshot address %+v, %v", ra, ok)
			}
			// Releasing returns the port to the pool.
			e.Must(204, e.Call("DELETE", "/reserved_addrs/"+id, e.Admin, nil))
			e.WantAuditBy("reserved_addr_deleted.v0", id)
			cptest.WantError(t, e.Call("GET", "/reserved_addrs/"+id, e.Admin, nil), 404, string(codes.APINotFound))
			again := e.Must(201, e.Call("POST", "/reserved_addrs", e.Admin, nil))
			if cptest.Str(again, "addr") != "1.tcp.eu.example.com:20000" {
				t.Fatalf("again = %v", again)
			}
		})
	}
}

func TestReservationsBadInput(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		d := e.Must(201, e.Call("POST", "/reserved_domains", e.Admin, map[string]any{"domain": "ok.example.com"}))
		a := e.Must(201, e.Call("POST", "/reserved_addrs", e.Admin, map[string]any{"addr": "ok.example.com:1000"}))
		dPath, aPath := "/reserved_domains/"+cptest.Str(d, "id"), "/reserved_addrs/"+cptest.Str(a, "id")
		long, huge := strings.Repeat("é", 128), strings.Repeat("m", 4097)
		cases := []struct {
			name, method, path string
			body               any
			status             int
			code               codes.Code
		}{
			{"unknown field", "POST", "/reserved_domains", `{"domain":"a.example.com","domian":"x"}`, 400, codes.APIUnknownParam},
			{"legacy name", "POST", "/reserved_domains", `{"name":"a"}`, 400, codes.APIUnknownParam},
			{"unknown addr field", "POST", "/reserved_addrs", `{"addr":"a.example.com:1","port":1}`, 400, codes.APIUnknownParam},
			{"addr on patch", "PATCH", aPath, `{"addr":"b.example.com:1"}`, 400, codes.APIUnknownParam},
			{"domain on patch", "PATCH", dPath, `{"domain":"b.example.com"}`, 400, codes.APIUnknownParam},
			{"domain not a string", "POST", "/reserved_domains", `{"domain":5}`, 400, codes.APIBodyInvalid},
			{"region not a string", "POST", "/reserved_addrs", `{"region":["eu"]}`, 400, codes.APIBodyInvalid},
			{"tls not a string", "PATCH", dPath, `{"min_tls_version":1.2}`, 400, codes.APIBodyInvalid},
			{"policy not an object", "POST", "/reserved_domains", `{"domain":"a.example.com","certificate_management_policy":"letsencrypt"}`, 400, codes.APIBodyInvalid},
			{"policy field type", "PATCH", dPath, `{"certificate_management_policy":{"authority":1}}`, 400, codes.APIBodyInvalid},
			{"policy unknown field", "PATCH", dPath, `{"certificate_management_policy":{"key_type":"rsa"}}`, 400, codes.APIUnknownParam},
			{"policy authority", "POST", "/reserved_domains", map[string]any{"domain": "a.example.com", "certificate_management_policy": map[string]any{"authority": "zerossl"}}, 400, codes.CertPolicyInvalid},
			{"policy key type", "PATCH", dPath, map[string]any{"certificate_management_policy": map[string]any{"private_key_type": "ed25519"}}, 400, codes.CertPolicyInvalid},
			{"certificate_id", "POST", "/reserved_domains", map[string]any{"domain": "a.example.com", "certificate_id": "cert_x"}, 400, codes.CertificateUnsupported},
			{"min tls", "POST", "/reserved_domains", map[string]any{"domain": "a.example.com", "min_tls_version": "1.4"}, 400, codes.MinTLSVersionInvalid},
			{"min tls word", "PATCH", dPath, map[string]any{"min_tls_version": "TLS1.2"}, 400, codes.MinTLSVersionInvalid},
			{"hsts not an object", "PATCH", dPath, `{"hsts":"max-age=60"}`, 400, codes.APIBodyInvalid},
			{"hsts field type", "POST", "/reserved_domains", `{"domain":"a.example.com","hsts":{"max_age":"60"}}`, 400, codes.APIBodyInvalid},
			{"hsts fraction", "PATCH", dPath, `{"hsts":{"max_age":1.5}}`, 400, codes.APIBodyInvalid},
			{"hsts unknown field", "PATCH", dPath, `{"hsts":{"max_age":60,"include_subdomain":true}}`, 400, codes.APIUnknownParam},
			{"hsts no max_age", "PATCH", dPath, `{"hsts":{"include_subdomains":true}}`, 400, codes.HSTSInvalid},
			{"hsts negative", "PATCH", dPath, `{"hsts":{"max_age":-1}}`, 400, codes.HSTSInvalid},
			{"hsts over two years", "POST", "/reserved_domains", `{"domain":"a.example.com","hsts":{"max_age":63072001}}`, 400, codes.HSTSInvalid},
			{"hsts preload alone", "PATCH", dPath, `{"hsts":{"max_age":31536000,"preload":true}}`, 400, codes.HSTSInvalid},
			{"hsts preload short", "PATCH", dPath, `{"hsts":{"max_age":600,"include_subdomains":true,"preload":true}}`, 400, codes.HSTSInvalid},
			{"no domain", "POST", "/reserved_domains", map[string]any{}, 400, codes.DomainInvalid},
			{"ip domain", "POST", "/reserved_domains", map[string]any{"domain": "192.0.2.1"}, 400, codes.DomainInvalid},
			{"ipv6 domain", "POST", "/reserved_domains", map[string]any{"domain": "[2001:db8::1]"}, 400, codes.DomainInvalid},
			{"domain with port", "POST", "/reserved_domains", map[string]any{"domain": "a.example.com:443"}, 400, codes.DomainInvalid},
			{"domain with scheme", "POST", "/reserved_domains", map[string]any{"domain": "https://a.example.com"}, 400, codes.DomainInvalid},
			{"inner wildcard", "POST", "/reserved_domains", map[string]any{"domain": "a.*.example.com"}, 400, codes.DomainInvalid},
			{"tld wildcard", "POST", "/reserved_domains", map[string]any{"domain": "*.com"}, 400, codes.DomainInvalid},
			{"underscore", "POST", "/reserved_domains", map[string]any{"domain": "a_b.example.com"}, 400, codes.DomainInvalid},
			{"bad region", "POST", "/reserved_domains", map[string]any{"domain": "a.example.com", "region": "mars"}, 400, codes.RegionInvalid},
			{"upper region", "POST", "/reserved_addrs", map[string]any{"addr": "a.example.com:1", "region": "EU"}, 400, codes.RegionInvalid},
			{"empty region patch", "PATCH", aPath, map[string]any{"region": ""}, 400, codes.RegionInvalid},
			{"addr without port", "POST", "/reserved_addrs", map[string]any{"addr": "a.example.com"}, 400, codes.AddrInvalid},
			{"addr port 0", "POST", "/reserved_addrs", map[string]any{"addr": "a.example.com:0"}, 400, codes.AddrInvalid},
			{"addr port big", "POST", "/reserved_addrs", map[string]any{"addr": "a.example.com:70000"}, 400, codes.AddrInvalid},
			{"addr scheme", "POST", "/reserved_addrs", map[string]any{"addr": "tcp://a.example.com:1"}, 400, codes.AddrInvalid},
			{"no addr, no pool", "POST", "/reserved_addrs", map[string]any{}, 400, codes.AddrRequired},
			{"description 256 bytes", "POST", "/reserved_domains", map[string]any{"domain": "a.example.com", "description": long}, 400, codes.APIDescriptionLength},
			{"description patch", "PATCH", aPath, map[string]any{"description": strings.Repeat("d", 256)}, 400, codes.APIDescriptionLength},
			{"metadata 4097", "POST", "/reserved_addrs", map[string]any{"addr": "a.example.com:1", "metadata": huge}, 400, codes.APIMetadataLength},
			{"metadata patch", "PATCH", dPath, map[string]any{"metadata": huge}, 400, codes.APIMetadataLength},
			{"malformed id", "GET", "/reserved_domains/rd_123", nil, 400, codes.APIInvalidID},
			{"malformed id patch", "PATCH", "/reserved_addrs/ra_!!", map[string]any{}, 400, codes.APIInvalidID},
			{"id of another kind", "DELETE", "/reserved_domains/" + cptest.Str(a, "id"), nil, 400, codes.APIInvalidID},
			{"addr id of another kind", "GET", "/reserved_addrs/" + cptest.Str(d, "id"), nil, 400, codes.APIInvalidID},
			{"policy delete bad id", "DELETE", "/reserved_domains/x/certificate_management_policy", nil, 400, codes.APIInvalidID},
			{"unknown domain", "GET", "/reserved_domains/" + ids.New(ids.PrefixReservedDomain), nil, 404, codes.APINotFound},
			{"unknown addr", "DELETE", "/reserved_addrs/" + ids.New(ids.PrefixReservedAddr), nil, 404, codes.APINotFound},
			{"limit 0", "GET", "/reserved_domains?limit=0", nil, 400, codes.APIPageSize},
			{"limit 101", "GET", "/reserved_addrs?limit=101", nil, 400, codes.APIPageSize},
			{"limit -1", "GET", "/reserved_addrs?limit=-1", nil, 400, codes.APIPageSize},
			{"bad before_id", "GET", "/reserved_domains?before_id=" + cptest.Str(a, "id"), nil, 400, codes.APIInvalidID},
			{"unknown query", "GET", "/reserved_addrs?region=eu", nil, 400, codes.APIUnknownParam},
			{"body on delete", "DELETE", dPath, `{"x":1}`, 400, codes.APIBodyNotAllowed},
			{"method", "PUT", dPath, `{}`, 405, codes.APIMethodNotAllowed},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := e.Revision()
				cptest.WantError(t, e.Call(tc.method, tc.path, e.Admin, tc.body), tc.status, string(tc.code))
				if after := e.Revision(); after != before {
					t.Fatalf("refused request moved the revision %d -> %d", before, after)
				}
			})
		}
		// Nothing was reserved by the refused requests, and the objects kept
		// their values.
		if items, _ := e.Must(200, e.Call("GET", "/reserved_domains", e.Admin, nil))["reserved_domains"].([]any); len(items) != 1 {
			t.Fatalf("%d reserved domains, want 1", len(items))
		}
		got := e.Must(200, e.Call("GET", dPath, e.Admin, nil))
		if p, _ := got["certificate_management_policy"].(map[string]any); cptest.Str(got, "metadata") != "" || cptest.Str(p, "private_key_type") != "rsa" || got["min_tls_version"] != nil || got["hsts"] != nil {
			t.Fatalf("domain changed: %v", got)
		}
		// At the limits is accepted.
		e.Must(201, e.Call("POST", "/reserved_domains", e.Admin, map[string]any{"domain": "edge.example.com",
			"description": strings.Repeat("d", 255), "metadata": strings.Repeat("m", 4096)}))
		e.Must(200, e.Call("GET", "/reserved_domains?limit=1", e.Admin, nil))
		e.Must(200, e.Call("GET", "/reserved_addrs?limit=100", e.Admin, nil))
	})
}

func TestReservationsRoles(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		ctx := cptest.Ctx(t)
		ro, err := e.Store.CreateUser(ctx, store.SystemActor, "viewer@example.com", "Viewer")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: e.Dev.AccountID, UserID: ro.ID,
			Developer: store.DeveloperRO, Team: store.TeamRO}); err != nil {
			t.Fatal(err)
		}
		roKey := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": ro.ID})), "token")
		bot := e.Must(201, e.Call("POST", "/bot_users", e.Admin, map[string]any{"name": "ci"}))
		botKey := cptest.Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": cptest.Str(bot, "id")})), "token")

		d := e.Must(201, e.Call("POST", "/reserved_domains", botKey, map[string]any{"domain": "bot.example.com"}))
		a := e.Must(201, e.Call("POST", "/reserved_addrs", botKey, map[string]any{"addr": "bot.example.com:1"}))
		dPath, aPath := "/reserved_domains/"+cptest.Str(d, "id"), "/reserved_addrs/"+cptest.Str(a, "id")

		// A read-only member reads everything and changes nothing.
		before := e.Revision()
		for _, p := range []string{"/reserved_domains", "/reserved_addrs", dPath, aPath} {
			e.Must(200, e.Call("GET", p, roKey, nil))
		}
		writes := []struct {
			method, path string
			body         any
		}{
			{"POST", "/reserved_domains", map[string]any{"domain": "ro.example.com"}},
			{"POST", "/reserved_addrs", map[string]any{"addr": "ro.example.com:1"}},
			{"PATCH", dPath, map[string]any{"description": "x"}},
			{"PATCH", aPath, map[string]any{"description": "x"}},
			{"DELETE", dPath + "/certificate_management_policy", nil},
			{"DELETE", dPath, nil},
			{"DELETE", aPath, nil},
		}
		for _, w := range writes {
			cptest.WantError(t, e.Call(w.method, w.path, roKey, w.body), 403, string(codes.APIForbidden))
		}
		if e.Revision() != before {
			t.Fatal("a read-only member changed the store")
		}
		// The bot's reservations belong to the account: the admin manages them.
		e.Must(200, e.Call("PATCH", dPath, e.Admin, map[string]any{"description": "by admin"}))
		e.Must(204, e.Call("DELETE", aPath, e.Admin, nil))
		e.Must(204, e.Call("DELETE", dPath, botKey, nil))
		// The audit log names the bot for its own mutation.
		evs, _, err := e.Store.ListAuditEvents(ctx, e.Dev.AccountID, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var botEvents []string
		for _, ev := range evs {
			if ev.ActorID == cptest.Str(bot, "id") && strings.HasPrefix(ev.Type, "reserved_") {
				botEvents = append(botEvents, ev.Type)
			}
		}
		slices.Sort(botEvents)
		if got := strings.Join(botEvents, " "); got != "reserved_addr_created.v0 reserved_domain_created.v0 reserved_domain_deleted.v0" {
			t.Fatalf("bot's audit events: %s", got)
		}
	})
}

// TestReservedDomainCertificateStatus: certificate_management_status shows
// what the edges reported (store.PutCertificateStatus): renews_at once a
// certificate is held, a provisioning job with its error code and retry
// time while obtaining fails, and null without a policy.
func TestReservedDomainCertificateStatus(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{})
	id := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/reserved_domains", e.Admin, map[string]any{"domain": "status.example.com"})), "id")
	status := func() map[string]any {
		t.Helper()
		st, _ := e.Must(http.StatusOK, e.Call(http.MethodGet, "/reserved_domains/"+id, e.Admin, nil))["certificate_management_status"].(map[string]any)
		return st
	}
	now := time.Now().UTC().Truncate(time.Second)
	if err := e.Store.PutCertificateStatus(cptest.Ctx(t), store.CertificateStatus{Domain: "status.example.com",
		JobErrorCode: store.CertErrorDNS, JobMsg: "no A record", JobStartedAt: now, JobRetriesAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	st := status()
	job, _ := st["provisioning_job"].(map[string]any)
	if st["renews_at"] != nil || job == nil || cptest.Str(job, "error_code") != "DNS_ERROR" || cptest.Str(job, "msg") != "no A record" ||
		cptest.Str(job, "retries_at") != now.Add(time.Minute).Format(time.RFC3339) {
		t.Fatalf("failing status = %v", st)
	}
	if err := e.Store.PutCertificateStatus(cptest.Ctx(t), store.CertificateStatus{Domain: "status.example.com",
		NotAfter: now.Add(90 * 24 * time.Hour), RenewsAt: now.Add(60 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if st := status(); cptest.Str(st, "renews_at") != now.Add(60*24*time.Hour).Format(time.RFC3339) || st["provisioning_job"] != nil {
		t.Fatalf("held status = %v", st)
	}
	e.Must(http.StatusOK, e.Call(http.MethodPatch, "/reserved_domains/"+id, e.Admin, map[string]any{"certificate_management_policy": nil}))
	if st := status(); st != nil {
		t.Fatalf("status without a policy = %v", st)
	}
}
