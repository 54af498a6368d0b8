package controlplane

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
)

// TestAPIIPRestriction: the account's `api` IP restriction decides on the
// TCP peer address (127.0.0.1 here), never on X-Forwarded-For; unenforced,
// it only logs.
func TestAPIIPRestriction(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		office := str(e.must(http.StatusCreated, e.call(http.MethodPost, "/ip_policies", e.admin, map[string]any{"description": "office"})), "id")
		e.must(http.StatusCreated, e.call(http.MethodPost, "/ip_policy_rules", e.admin,
			map[string]any{"ip_policy_id": office, "cidr": "10.0.0.0/8", "action": "allow"}))
		loop := str(e.must(http.StatusCreated, e.call(http.MethodPost, "/ip_policies", e.admin, map[string]any{"description": "loopback"})), "id")
		e.must(http.StatusCreated, e.call(http.MethodPost, "/ip_policy_rules", e.admin,
			map[string]any{"ip_policy_id": loop, "cidr": "127.0.0.0/8", "action": "allow"}))

		// Allows loopback: calls go through, whatever X-Forwarded-For says.
		ok := str(e.must(http.StatusCreated, e.call(http.MethodPost, "/ip_restrictions", e.admin,
			map[string]any{"type": "api", "ip_policy_ids": []string{loop}, "enforced": true})), "id")
		e.must(http.StatusOK, e.call(http.MethodGet, "/bot_users", e.admin, nil, "X-Forwarded-For", "192.0.2.1"))
		if err := e.store.DeleteIPRestriction(testCtx(t), store.SystemActor, e.dev.AccountID, ok); err != nil {
			t.Fatal(err)
		}

		// Unenforced, refusing loopback: let through (and logged).
		before := apiDryRunRefusals.Load()
		dry := str(e.must(http.StatusCreated, e.call(http.MethodPost, "/ip_restrictions", e.admin,
			map[string]any{"type": "api", "ip_policy_ids": []string{office}, "enforced": false})), "id")
		e.must(http.StatusOK, e.call(http.MethodGet, "/bot_users", e.admin, nil))
		if apiDryRunRefusals.Load() == before {
			t.Fatal("an unenforced refusal was not counted")
		}
		// Enforced: refused, and a forged X-Forwarded-For inside the
		// allowed network changes nothing.
		e.must(http.StatusOK, e.call(http.MethodPatch, "/ip_restrictions/"+dry, e.admin, map[string]any{"enforced": true}))
		rev := e.revision()
		wantError(t, e.call(http.MethodGet, "/bot_users", e.admin, nil, "X-Forwarded-For", "10.1.2.3"),
			http.StatusForbidden, string(codes.APIIPRestricted))
		wantError(t, e.call(http.MethodPost, "/bot_users", e.admin, map[string]any{"name": "x"}),
			http.StatusForbidden, string(codes.APIIPRestricted))
		if e.revision() != rev {
			t.Fatal("a refused request changed the store")
		}
		// Another surface's restriction does not touch the API.
		if err := e.store.DeleteIPRestriction(testCtx(t), store.SystemActor, e.dev.AccountID, dry); err != nil {
			t.Fatal(err)
		}
		e.must(http.StatusCreated, e.call(http.MethodPost, "/ip_restrictions", e.admin,
			map[string]any{"type": "agent", "ip_policy_ids": []string{office}, "enforced": true}))
		e.must(http.StatusOK, e.call(http.MethodGet, "/bot_users", e.admin, nil))
	})
}

// TestAPIIPRestrictionIPv6: the same API served on ::1 and 127.0.0.1; a
// restriction allowing only ::1/128 admits the IPv6 caller and refuses the
// IPv4 one, and an IPv4-mapped rule form stays IPv4.
func TestAPIIPRestrictionIPv6(t *testing.T) {
	e := newEnv(t, storetest.DSN(t, "sqlite"), ServerConfig{})
	ln6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("listening on IPv6 loopback: %v", err)
	}
	v6 := httptest.NewUnstartedServer(e.srv.Handler())
	v6.Listener.Close()
	v6.Listener = ln6
	v6.Start()
	t.Cleanup(v6.Close)

	pol := str(e.must(http.StatusCreated, e.call(http.MethodPost, "/ip_policies", e.admin, map[string]any{})), "id")
	e.must(http.StatusCreated, e.call(http.MethodPost, "/ip_policy_rules", e.admin,
		map[string]any{"ip_policy_id": pol, "cidr": "::1/128", "action": "allow"}))
	e.must(http.StatusCreated, e.call(http.MethodPost, "/ip_restrictions", e.admin,
		map[string]any{"type": "api", "ip_policy_ids": []string{pol}, "enforced": true}))

	wantError(t, e.call(http.MethodGet, "/bot_users", e.admin, nil), http.StatusForbidden, string(codes.APIIPRestricted))
	e.must(http.StatusOK, e.call(http.MethodGet, v6.URL+"/bot_users", e.admin, nil))
}
