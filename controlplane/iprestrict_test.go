package controlplane_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/policy"
)

// TestAPIIPRestriction: the account's `api` IP restriction decides on the
// TCP peer address (127.0.0.1 here), never on X-Forwarded-For; unenforced,
// it only logs.
func TestAPIIPRestriction(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		office := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policies", e.Admin, map[string]any{"description": "office"})), "id")
		e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policy_rules", e.Admin,
			map[string]any{"ip_policy_id": office, "cidr": "10.0.0.0/8", "action": "allow"}))
		loop := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policies", e.Admin, map[string]any{"description": "loopback"})), "id")
		e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policy_rules", e.Admin,
			map[string]any{"ip_policy_id": loop, "cidr": "127.0.0.0/8", "action": "allow"}))

		// Allows loopback: calls go through, whatever X-Forwarded-For says.
		ok := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_restrictions", e.Admin,
			map[string]any{"type": "api", "ip_policy_ids": []string{loop}, "enforced": true})), "id")
		e.Must(http.StatusOK, e.Call(http.MethodGet, "/bot_users", e.Admin, nil, "X-Forwarded-For", "192.0.2.1"))
		if err := e.Store.DeleteIPRestriction(cptest.Ctx(t), store.SystemActor, e.Dev.AccountID, ok); err != nil {
			t.Fatal(err)
		}

		// Unenforced, refusing loopback: let through (and logged).
		before := controlplane.DryRunRefusals(policy.SurfaceAPI)
		dry := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_restrictions", e.Admin,
			map[string]any{"type": "api", "ip_policy_ids": []string{office}, "enforced": false})), "id")
		e.Must(http.StatusOK, e.Call(http.MethodGet, "/bot_users", e.Admin, nil))
		if controlplane.DryRunRefusals(policy.SurfaceAPI) == before {
			t.Fatal("an unenforced refusal was not counted")
		}
		// Enforced: refused, and a forged X-Forwarded-For inside the
		// allowed network changes nothing.
		e.Must(http.StatusOK, e.Call(http.MethodPatch, "/ip_restrictions/"+dry, e.Admin, map[string]any{"enforced": true}))
		rev := e.Revision()
		cptest.WantError(t, e.Call(http.MethodGet, "/bot_users", e.Admin, nil, "X-Forwarded-For", "10.1.2.3"),
			http.StatusForbidden, string(codes.APIIPRestricted))
		cptest.WantError(t, e.Call(http.MethodPost, "/bot_users", e.Admin, map[string]any{"name": "x"}),
			http.StatusForbidden, string(codes.APIIPRestricted))
		if e.Revision() != rev {
			t.Fatal("a refused request changed the store")
		}
		// Another surface's restriction does not touch the API.
		if err := e.Store.DeleteIPRestriction(cptest.Ctx(t), store.SystemActor, e.Dev.AccountID, dry); err != nil {
			t.Fatal(err)
		}
		e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_restrictions", e.Admin,
			map[string]any{"type": "agent", "ip_policy_ids": []string{office}, "enforced": true}))
		e.Must(http.StatusOK, e.Call(http.MethodGet, "/bot_users", e.Admin, nil))
	})
}

// TestAPIIPRestrictionIPv6: the same API served on ::1 and 127.0.0.1; a
// restriction allowing only ::1/128 admits the IPv6 caller and refuses the
// IPv4 one, and an IPv4-mapped rule form stays IPv4.
func TestAPIIPRestrictionIPv6(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{})
	ln6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("listening on IPv6 loopback: %v", err)
	}
	v6 := httptest.NewUnstartedServer(e.API.Handler())
	v6.Listener.Close()
	v6.Listener = ln6
	v6.Start()
	t.Cleanup(v6.Close)

	pol := cptest.Str(e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policies", e.Admin, map[string]any{})), "id")
	e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_policy_rules", e.Admin,
		map[string]any{"ip_policy_id": pol, "cidr": "::1/128", "action": "allow"}))
	e.Must(http.StatusCreated, e.Call(http.MethodPost, "/ip_restrictions", e.Admin,
		map[string]any{"type": "api", "ip_policy_ids": []string{pol}, "enforced": true}))

	cptest.WantError(t, e.Call(http.MethodGet, "/bot_users", e.Admin, nil), http.StatusForbidden, string(codes.APIIPRestricted))
	e.Must(http.StatusOK, e.Call(http.MethodGet, v6.URL+"/bot_users", e.Admin, nil))
}
