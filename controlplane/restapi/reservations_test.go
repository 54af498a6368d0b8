package controlplane

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// otherAccount creates a second account with an administrator and returns
// the account ID and an API key token of that administrator.
func (e *env) otherAccount(name string) (accountID, key string) {
	e.t.Helper()
	ctx := testCtx(e.t)
	a, err := e.store.CreateAccount(ctx, store.SystemActor, name)
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := e.store.CreateUser(ctx, store.SystemActor, name+"-admin@example.com", "Admin")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: a.ID, UserID: u.ID,
		Developer: store.DeveloperRW, Team: store.TeamManager, Admin: true}); err != nil {
		e.t.Fatal(err)
	}
	_, tok, err := e.store.CreateAPIKey(ctx, store.SystemActor, a.ID, store.APIKeyCreate{OwnerID: u.ID})
	if err != nil {
		e.t.Fatal(err)
	}
	return a.ID, tok.Reveal()
}

// wantAuditBy checks that exactly one audit event of typ names objectID and
// the dev admin's API key as its actor.
func (e *env) wantAuditBy(typ, objectID string) store.AuditEvent {
	e.t.Helper()
	evs, _, err := e.store.ListAuditEvents(testCtx(e.t), e.dev.AccountID, store.Page{})
	if err != nil {
		e.t.Fatal(err)
	}
	var found []store.AuditEvent
	for _, ev := range evs {
		if ev.Type == typ && ev.ObjectID == objectID {
			found = append(found, ev)
		}
	}
	if len(found) != 1 || found[0].ActorID != e.dev.UserID || found[0].ActorCredentialID != e.dev.APIKeyID {
		e.t.Fatalf("%s events for %s: %+v", typ, objectID, found)
	}
	return found[0]
}

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
	eachDialect(t, func(t *testing.T, e *env) {
		before := e.revision()
		created := e.must(201, e.call("POST", "/reserved_domains", e.admin, map[string]any{
			"domain": "Bücher.Example.com.", "region": "eu", "description": "shop", "metadata": `{"x":1}`, "min_tls_version": "1.2"}))
		id := str(created, "id")
		if !strings.HasPrefix(id, "rd_") || str(created, "uri") != e.http.URL+"/reserved_domains/"+id ||
			str(created, "domain") != "xn--bcher-kva.example.com" || str(created, "region") != "eu" ||
			str(created, "description") != "shop" || str(created, "metadata") != `{"x":1}` || str(created, "min_tls_version") != "1.2" {
			t.Fatalf("created = %v", created)
		}
		const wantKeys = "acme_challenge_cname_target certificate certificate_management_policy certificate_management_status " +
			"cname_target created_at description domain id metadata min_tls_version region uri"
		if keysOf(created) != wantKeys {
			t.Fatalf("fields %q, want %q", keysOf(created), wantKeys)
		}
		if p, _ := created["certificate_management_policy"].(map[string]any); str(p, "authority") != "letsencrypt" || str(p, "private_key_type") != "rsa" {
			t.Fatalf("default policy = %v", created["certificate_management_policy"])
		}
		if created["certificate"] != nil || created["cname_target"] != nil {
			t.Fatalf("created = %v", created)
		}
		// No edge has reported yet: provisioning started at creation.
		if st, _ := created["certificate_management_status"].(map[string]any); st == nil || st["renews_at"] != nil {
			t.Fatalf("status = %v", created["certificate_management_status"])
		} else if job, _ := st["provisioning_job"].(map[string]any); job == nil || job["error_code"] != nil || str(job, "started_at") != str(created, "created_at") {
			t.Fatalf("provisioning job = %v", st["provisioning_job"])
		}
		if e.revision() != before+1 {
			t.Fatalf("revision %d, want %d", e.revision(), before+1)
		}
		ev := e.wantAuditBy("reserved_domain_created.v0", id)
		if ev.Revision != before+1 {
			t.Fatalf("audit revision %d, want %d", ev.Revision, before+1)
		}

		got := e.must(200, e.call("GET", "/reserved_domains/"+id, e.admin, nil))
		if str(got, "domain") != "xn--bcher-kva.example.com" || str(got, "created_at") != str(created, "created_at") {
			t.Fatalf("got = %v", got)
		}
		// The feed's snapshot carries the reservation.
		snap, err := e.srv.Snapshot(testCtx(t), before)
		if err != nil {
			t.Fatal(err)
		}
		if rd, ok := snap.ReservedDomain("xn--bcher-kva.example.com"); !ok || rd.AccountID != e.dev.AccountID || rd.Region != "eu" ||
			rd.PrivateKeyType != "rsa" || rd.MinTLSVersion != "1.2" {
			t.Fatalf("snapshot reservation %+v, %v", rd, ok)
		}

		// Defaults: region us; a null policy means no certificate management.
		plain := e.must(201, e.call("POST", "/reserved_domains", e.admin, `{"domain":"*.apps.example.com","certificate_management_policy":null}`))
		if str(plain, "region") != "us" || plain["certificate_management_policy"] != nil || plain["min_tls_version"] != nil ||
			str(plain, "domain") != "*.apps.example.com" {
			t.Fatalf("plain = %v", plain)
		}
		list := e.must(200, e.call("GET", "/reserved_domains", e.admin, nil))
		items, _ := list["reserved_domains"].([]any)
		if len(items) != 2 || list["next_page_uri"] != nil || str(list, "uri") != e.http.URL+"/reserved_domains" {
			t.Fatalf("list = %v", list)
		}
		page := e.must(200, e.call("GET", "/reserved_domains?limit=1", e.admin, nil))
		if items, _ := page["reserved_domains"].([]any); len(items) != 1 || page["next_page_uri"] == nil {
			t.Fatalf("page = %v", page)
		}

		// Update: key type, TLS floor; region may only repeat.
		upd := e.must(200, e.call("PATCH", "/reserved_domains/"+id, e.admin, map[string]any{
			"certificate_management_policy": map[string]any{"authority": "letsencrypt", "private_key_type": "ecdsa"},
			"min_tls_version":               "1.3", "region": "eu"}))
		if p, _ := upd["certificate_management_policy"].(map[string]any); str(p, "private_key_type") != "ecdsa" || str(upd, "min_tls_version") != "1.3" ||
			str(upd, "description") != "shop" {
			t.Fatalf("updated = %v", upd)
		}
		e.wantAuditBy("reserved_domain_updated.v0", id)
		r0 := e.revision()
		wantError(t, e.call("PATCH", "/reserved_domains/"+id, e.admin, map[string]any{"region": "us"}), 400, string(codes.RegionImmutable))
		e.must(200, e.call("PATCH", "/reserved_domains/"+id, e.admin, map[string]any{"description": "shop"}))
		if e.revision() != r0 {
			t.Fatal("a refused or empty update moved the revision")
		}
		upd = e.must(200, e.call("PATCH", "/reserved_domains/"+id, e.admin, `{"min_tls_version":null}`))
		if v, ok := upd["min_tls_version"]; !ok || v != nil {
			t.Fatalf("min_tls_version after null = %v", upd["min_tls_version"])
		}
		e.must(204, e.call("DELETE", "/reserved_domains/"+id+"/certificate_management_policy", e.admin, nil))
		if got := e.must(200, e.call("GET", "/reserved_domains/"+id, e.admin, nil)); got["certificate_management_policy"] != nil {
			t.Fatalf("policy after delete = %v", got["certificate_management_policy"])
		}
		e.must(204, e.call("DELETE", "/reserved_domains/"+id+"/certificate", e.admin, nil))

		// Release.
		snapRev := e.revision()
		e.must(204, e.call("DELETE", "/reserved_domains/"+id, e.admin, nil))
		e.wantAuditBy("reserved_domain_deleted.v0", id)
		wantError(t, e.call("GET", "/reserved_domains/"+id, e.admin, nil), 404, string(codes.APINotFound))
		wantError(t, e.call("DELETE", "/reserved_domains/"+id, e.admin, nil), 404, string(codes.APINotFound))
		snap, err = e.srv.Snapshot(testCtx(t), snapRev)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := snap.ReservedDomain("xn--bcher-kva.example.com"); ok {
			t.Fatal("released domain still in the snapshot")
		}
	})
}

func TestReservationsOfAnotherAccount(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		_, otherKey := e.otherAccount("other")
		d := e.must(201, e.call("POST", "/reserved_domains", e.admin, map[string]any{"domain": "app.example.com"}))
		a := e.must(201, e.call("POST", "/reserved_addrs", e.admin, map[string]any{"addr": "tcp.example.com:20000"}))
		w := e.must(201, e.call("POST", "/reserved_domains", otherKey, map[string]any{"domain": "*.other.example.org"}))
		before := e.revision()
		cases := []struct {
			name, key, path string
			body            any
			status          int
			code            codes.Code
		}{
			{"domain of another", otherKey, "/reserved_domains", map[string]any{"domain": "APP.example.com."}, 409, codes.ReservedByOther},
			{"domain again", e.admin, "/reserved_domains", map[string]any{"domain": "app.example.com", "region": "eu"}, 409, codes.ReservedAlready},
			{"under another's wildcard", e.admin, "/reserved_domains", map[string]any{"domain": "x.other.example.org"}, 409, codes.ReservedByOther},
			{"over another's name", otherKey, "/reserved_domains", map[string]any{"domain": "*.example.com"}, 409, codes.ReservedByOther},
			{"addr of another", otherKey, "/reserved_addrs", map[string]any{"addr": "TCP.example.com:20000"}, 409, codes.ReservedByOther},
			{"addr again", e.admin, "/reserved_addrs", map[string]any{"addr": "tcp.example.com:020000"}, 409, codes.ReservedAlready},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				wantError(t, e.call("POST", tc.path, tc.key, tc.body), tc.status, string(tc.code))
			})
		}
		if e.revision() != before {
			t.Fatal("refused reservations moved the revision")
		}
		// Another account's reservations are invisible and untouchable.
		for _, p := range []string{"/reserved_domains/" + str(d, "id"), "/reserved_addrs/" + str(a, "id")} {
			wantError(t, e.call("GET", p, otherKey, nil), 404, string(codes.APINotFound))
			wantError(t, e.call("PATCH", p, otherKey, map[string]any{"description": "mine"}), 404, string(codes.APINotFound))
			wantError(t, e.call("DELETE", p, otherKey, nil), 404, string(codes.APINotFound))
		}
		wantError(t, e.call("GET", "/reserved_domains/"+str(w, "id"), e.admin, nil), 404, string(codes.APINotFound))
		if items, _ := e.must(200, e.call("GET", "/reserved_domains", otherKey, nil))["reserved_domains"].([]any); len(items) != 1 {
			t.Fatalf("other account lists %d domains", len(items))
		}
		if e.revision() != before {
			t.Fatal("refused requests moved the revision")
		}
	})
}

// TestReservationRaceThroughAPI sends concurrent reservations of one domain
// from two accounts: exactly one gets 201, every other gets 409.
func TestReservationRaceThroughAPI(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		_, otherKey := e.otherAccount("racer")
		before := e.revision()
		const n = 10
		statuses := make(chan int, n)
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			key := e.admin
			if i%2 == 1 {
				key = otherKey
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest("POST", e.http.URL+"/reserved_domains", bytes.NewReader([]byte(`{"domain":"race.example.com"}`)))
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+key)
				res, err := e.http.Client().Do(req)
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
		if e.revision() != before+1 {
			t.Fatalf("revision %d, want %d", e.revision(), before+1)
		}
	})
}

func TestReservedAddrsAPI(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			e := newEnv(t, storetest.DSN(t, d), ServerConfig{
				DefaultRegion: "eu",
				TCPAddrPools:  map[string]TCPAddrPool{"eu": {Host: "1.tcp.eu.example.com", FirstPort: 20000, LastPort: 20001}},
			})
			before := e.revision()
			first := e.must(201, e.call("POST", "/reserved_addrs", e.admin, map[string]any{"description": "db"}))
			id := str(first, "id")
			if !strings.HasPrefix(id, "ra_") || str(first, "addr") != "1.tcp.eu.example.com:20000" || str(first, "region") != "eu" ||
				str(first, "uri") != e.http.URL+"/reserved_addrs/"+id || str(first, "description") != "db" {
				t.Fatalf("first = %v", first)
			}
			const wantKeys = "addr created_at description endpoint_configuration id metadata region uri"
			if keysOf(first) != wantKeys {
				t.Fatalf("fields %q, want %q", keysOf(first), wantKeys)
			}
			if ev := e.wantAuditBy("reserved_addr_created.v0", id); ev.Revision != before+1 {
				t.Fatalf("audit revision %d, want %d", ev.Revision, before+1)
			}
			second := e.must(201, e.call("POST", "/reserved_addrs", e.admin, map[string]any{"region": "eu"}))
			if str(second, "addr") != "1.tcp.eu.example.com:20001" {
				t.Fatalf("second = %v", second)
			}
			// An explicit address outside any pool, in a region without one.
			own := e.must(201, e.call("POST", "/reserved_addrs", e.admin, map[string]any{"addr": "Tcp.Example.com:9000", "region": "us"}))
			if str(own, "addr") != "tcp.example.com:9000" || str(own, "region") != "us" {
				t.Fatalf("own = %v", own)
			}
			r0 := e.revision()
			wantError(t, e.call("POST", "/reserved_addrs", e.admin, map[string]any{}), 409, string(codes.AddrPoolExhausted))
			wantError(t, e.call("POST", "/reserved_addrs", e.admin, map[string]any{"region": "us"}), 400, string(codes.AddrRequired))
			wantError(t, e.call("POST", "/reserved_addrs", e.admin, map[string]any{"addr": "1.tcp.eu.example.com:20001", "region": "us"}),
				400, string(codes.AddrInvalid))
			wantError(t, e.call("PATCH", "/reserved_addrs/"+id, e.admin, map[string]any{"region": "us"}), 400, string(codes.RegionImmutable))
			if e.revision() != r0 {
				t.Fatal("refused requests moved the revision")
			}
			upd := e.must(200, e.call("PATCH", "/reserved_addrs/"+id, e.admin, map[string]any{"metadata": "m", "region": "eu"}))
			if str(upd, "metadata") != "m" || str(upd, "description") != "db" || str(upd, "addr") != str(first, "addr") {
				t.Fatalf("updated = %v", upd)
			}
			e.wantAuditBy("reserved_addr_updated.v0", id)
			list := e.must(200, e.call("GET", "/reserved_addrs", e.admin, nil))
			if items, _ := list["reserved_addrs"].([]any); len(items) != 3 || str(list, "uri") != e.http.URL+"/reserved_addrs" {
				t.Fatalf("list = %v", list)
			}
			snap, err := e.srv.Snapshot(testCtx(t), 0)
			if err != nil {
				t.Fatal(err)
			}
			if ra, ok := snap.ReservedAddr("1.tcp.eu.example.com:20000"); !ok || ra.ID != id || ra.Region != "eu" || ra.AccountID != e.dev.AccountID {
				t.Fatalf("snapshot address %+v, %v", ra, ok)
			}
			// Releasing returns the port to the pool.
			e.must(204, e.call("DELETE", "/reserved_addrs/"+id, e.admin, nil))
			e.wantAuditBy("reserved_addr_deleted.v0", id)
			wantError(t, e.call("GET", "/reserved_addrs/"+id, e.admin, nil), 404, string(codes.APINotFound))
			again := e.must(201, e.call("POST", "/reserved_addrs", e.admin, nil))
			if str(again, "addr") != "1.tcp.eu.example.com:20000" {
				t.Fatalf("again = %v", again)
			}
		})
	}
}

func TestReservationsBadInput(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		d := e.must(201, e.call("POST", "/reserved_domains", e.admin, map[string]any{"domain": "ok.example.com"}))
		a := e.must(201, e.call("POST", "/reserved_addrs", e.admin, map[string]any{"addr": "ok.example.com:1000"}))
		dPath, aPath := "/reserved_domains/"+str(d, "id"), "/reserved_addrs/"+str(a, "id")
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
			{"id of another kind", "DELETE", "/reserved_domains/" + str(a, "id"), nil, 400, codes.APIInvalidID},
			{"addr id of another kind", "GET", "/reserved_addrs/" + str(d, "id"), nil, 400, codes.APIInvalidID},
			{"policy delete bad id", "DELETE", "/reserved_domains/x/certificate_management_policy", nil, 400, codes.APIInvalidID},
			{"unknown domain", "GET", "/reserved_domains/" + ids.New(ids.PrefixReservedDomain), nil, 404, codes.APINotFound},
			{"unknown addr", "DELETE", "/reserved_addrs/" + ids.New(ids.PrefixReservedAddr), nil, 404, codes.APINotFound},
			{"limit 0", "GET", "/reserved_domains?limit=0", nil, 400, codes.APIPageSize},
			{"limit 101", "GET", "/reserved_addrs?limit=101", nil, 400, codes.APIPageSize},
			{"limit -1", "GET", "/reserved_addrs?limit=-1", nil, 400, codes.APIPageSize},
			{"bad before_id", "GET", "/reserved_domains?before_id=" + str(a, "id"), nil, 400, codes.APIInvalidID},
			{"unknown query", "GET", "/reserved_addrs?region=eu", nil, 400, codes.APIUnknownParam},
			{"body on delete", "DELETE", dPath, `{"x":1}`, 400, codes.APIBodyNotAllowed},
			{"method", "PUT", dPath, `{}`, 405, codes.APIMethodNotAllowed},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := e.revision()
				wantError(t, e.call(tc.method, tc.path, e.admin, tc.body), tc.status, string(tc.code))
				if after := e.revision(); after != before {
					t.Fatalf("refused request moved the revision %d -> %d", before, after)
				}
			})
		}
		// Nothing was reserved by the refused requests, and the objects kept
		// their values.
		if items, _ := e.must(200, e.call("GET", "/reserved_domains", e.admin, nil))["reserved_domains"].([]any); len(items) != 1 {
			t.Fatalf("%d reserved domains, want 1", len(items))
		}
		got := e.must(200, e.call("GET", dPath, e.admin, nil))
		if p, _ := got["certificate_management_policy"].(map[string]any); str(got, "metadata") != "" || str(p, "private_key_type") != "rsa" || got["min_tls_version"] != nil {
			t.Fatalf("domain changed: %v", got)
		}
		// At the limits is accepted.
		e.must(201, e.call("POST", "/reserved_domains", e.admin, map[string]any{"domain": "edge.example.com",
			"description": strings.Repeat("d", 255), "metadata": strings.Repeat("m", 4096)}))
		e.must(200, e.call("GET", "/reserved_domains?limit=1", e.admin, nil))
		e.must(200, e.call("GET", "/reserved_addrs?limit=100", e.admin, nil))
	})
}

func TestReservationsRoles(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		ro, err := e.store.CreateUser(ctx, store.SystemActor, "viewer@example.com", "Viewer")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: e.dev.AccountID, UserID: ro.ID,
			Developer: store.DeveloperRO, Team: store.TeamRO}); err != nil {
			t.Fatal(err)
		}
		roKey := str(e.must(201, e.call("POST", "/api_keys", e.admin, map[string]any{"owner_id": ro.ID})), "token")
		bot := e.must(201, e.call("POST", "/bot_users", e.admin, map[string]any{"name": "ci"}))
		botKey := str(e.must(201, e.call("POST", "/api_keys", e.admin, map[string]any{"owner_id": str(bot, "id")})), "token")

		d := e.must(201, e.call("POST", "/reserved_domains", botKey, map[string]any{"domain": "bot.example.com"}))
		a := e.must(201, e.call("POST", "/reserved_addrs", botKey, map[string]any{"addr": "bot.example.com:1"}))
		dPath, aPath := "/reserved_domains/"+str(d, "id"), "/reserved_addrs/"+str(a, "id")

		// A read-only member reads everything and changes nothing.
		before := e.revision()
		for _, p := range []string{"/reserved_domains", "/reserved_addrs", dPath, aPath} {
			e.must(200, e.call("GET", p, roKey, nil))
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
			wantError(t, e.call(w.method, w.path, roKey, w.body), 403, string(codes.APIForbidden))
		}
		if e.revision() != before {
			t.Fatal("a read-only member changed the store")
		}
		// The bot's reservations belong to the account: the admin manages them.
		e.must(200, e.call("PATCH", dPath, e.admin, map[string]any{"description": "by admin"}))
		e.must(204, e.call("DELETE", aPath, e.admin, nil))
		e.must(204, e.call("DELETE", dPath, botKey, nil))
		// The audit log names the bot for its own mutation.
		evs, _, err := e.store.ListAuditEvents(ctx, e.dev.AccountID, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var botEvents []string
		for _, ev := range evs {
			if ev.ActorID == str(bot, "id") && strings.HasPrefix(ev.Type, "reserved_") {
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
	e := newEnv(t, storetest.DSN(t, "sqlite"), ServerConfig{})
	id := str(e.must(http.StatusCreated, e.call(http.MethodPost, "/reserved_domains", e.admin, map[string]any{"domain": "status.example.com"})), "id")
	status := func() map[string]any {
		t.Helper()
		st, _ := e.must(http.StatusOK, e.call(http.MethodGet, "/reserved_domains/"+id, e.admin, nil))["certificate_management_status"].(map[string]any)
		return st
	}
	now := time.Now().UTC().Truncate(time.Second)
	if err := e.store.PutCertificateStatus(testCtx(t), store.CertificateStatus{Domain: "status.example.com",
		JobErrorCode: store.CertErrorDNS, JobMsg: "no A record", JobStartedAt: now, JobRetriesAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	st := status()
	job, _ := st["provisioning_job"].(map[string]any)
	if st["renews_at"] != nil || job == nil || str(job, "error_code") != "DNS_ERROR" || str(job, "msg") != "no A record" ||
		str(job, "retries_at") != now.Add(time.Minute).Format(time.RFC3339) {
		t.Fatalf("failing status = %v", st)
	}
	if err := e.store.PutCertificateStatus(testCtx(t), store.CertificateStatus{Domain: "status.example.com",
		NotAfter: now.Add(90 * 24 * time.Hour), RenewsAt: now.Add(60 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if st := status(); str(st, "renews_at") != now.Add(60*24*time.Hour).Format(time.RFC3339) || st["provisioning_job"] != nil {
		t.Fatalf("held status = %v", st)
	}
	e.must(http.StatusOK, e.call(http.MethodPatch, "/reserved_domains/"+id, e.admin, map[string]any{"certificate_management_policy": nil}))
	if st := status(); st != nil {
		t.Fatalf("status without a policy = %v", st)
	}
}
