package controlplane

import (
	"net/http"
	"testing"

	"github.com/tollgate/tollgate/config"
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
			http.StatusForbidden, string(config.CodeAPIIPRestricted))
		wantError(t, e.call(http.MethodPost, "/bot_users", e.admin, map[string]any{"name": "x"}),
			http.StatusForbidden, string(config.CodeAPIIPRestricted))
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
