package restapi_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

// The RBAC matrix: every role against every route of the API. A row is one
// operation (method, path, and the variant of its target: owned by the
// caller or by someone else, an administrator or not); it says which roles
// may perform it and the status they get. Every other role must get 403
// TG_2604 and change nothing. TestRBACMatrixCoversEveryRoute checks the
// table against the methods the router serves, so a route added without a
// row fails the build of this test's expectations.

// roleSet is a set of the matrix's roles.
type roleSet uint

// The roles (docs/api-compatibility.md#roles). Developer and team
// dimensions are given in full: "team-manager" is developer ro + team
// manager, and so on, so that each role holds only the permission it names.
const (
	rAdmin       roleSet = 1 << iota // administrator flag, developer ro, team ro
	rDevRW                           // developer rw, team ro
	rDevRO                           // developer ro, team ro
	rTeamManager                     // developer ro, team manager
	rTeamInvite                      // developer ro, team invite-only
	rTeamRO                          // developer ro, team ro (the same grants as rDevRO, named for the team dimension)
	rBilling                         // developer ro, team ro, billing
	rBot                             // a bot user: developer rw, nothing else
	roleCount    = iota
)

// Who may do what.
const (
	everyone = rAdmin | rDevRW | rDevRO | rTeamManager | rTeamInvite | rTeamRO | rBilling | rBot
	users    = everyone &^ rBot       // every human member
	writers  = rAdmin | rDevRW | rBot // write resources, own credentials
	managers = rAdmin | rTeamManager  // bot users, other users' roles and membership, audit log
	inviters = managers | rTeamInvite // invitations with the least roles
	admins   = rAdmin                 // others' credentials, administrators, account settings
)

var roleNames = [roleCount]string{"admin", "developer-rw", "developer-ro", "team-manager", "team-invite", "team-ro", "billing-only", "bot"}

var roleMemberships = [roleCount]store.Membership{
	{Developer: store.DeveloperRO, Team: store.TeamRO, Admin: true},
	{Developer: store.DeveloperRW, Team: store.TeamRO},
	{Developer: store.DeveloperRO, Team: store.TeamRO},
	{Developer: store.DeveloperRO, Team: store.TeamManager},
	{Developer: store.DeveloperRO, Team: store.TeamInvite},
	{Developer: store.DeveloperRO, Team: store.TeamRO},
	{Developer: store.DeveloperRO, Team: store.TeamRO, Billing: true},
	{}, // bot
}

// rbacPrincipal is one role's principal in the matrix's account.
type rbacPrincipal struct {
	role  roleSet
	name  string
	id    string // usr_ or bot_
	email string // users only
	key   string // an API key the principal created itself
}

// rbacFixture is the account the matrix runs in, with one principal per
// role and what the rows need.
type rbacFixture struct {
	e       *cptest.Env
	t       *testing.T
	acct    string
	admin   string // the bootstrap administrator's key (not one of the roles)
	roles   []*rbacPrincipal
	other   string // a non-admin user who owns credentials the callers do not
	another string // another account every role user belongs to
	session string // an online agent session of the account
	ep      string // its endpoint
	n       int
}

// rbacRow is one operation of the matrix.
type rbacRow struct {
	method  string
	path    string // the route pattern, as the router has it
	variant string // what distinguishes this row from others of the same route
	allowed roleSet
	ok      int // the status of an allowed call
	// setup makes what the call acts on (fresh for every call that changes
	// something) and returns the concrete path and body.
	setup func(x *rbacFixture, p *rbacPrincipal) (path string, body any)
}

// at returns a setup for a fixed path without a body.
func at(path string) func(*rbacFixture, *rbacPrincipal) (string, any) {
	return func(*rbacFixture, *rbacPrincipal) (string, any) { return path, nil }
}

// rbacRows is the matrix. Keep it in the order of the routes in api.go.
func rbacRows() []rbacRow {
	var rows []rbacRow
	for _, coll := range []string{"bot_users", "service_users"} {
		rows = append(rows,
			rbacRow{"GET", "/" + coll, "", everyone, 200, at("/" + coll)},
			rbacRow{"POST", "/" + coll, "", managers, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
				return "/" + coll, map[string]any{"name": "made"}
			}},
			rbacRow{"GET", "/" + coll + "/{id}", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
				return "/" + coll + "/" + x.newBot(), nil
			}},
			rbacRow{"PATCH", "/" + coll + "/{id}", "", managers, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
				return "/" + coll + "/" + x.newBot(), map[string]any{"name": "renamed"}
			}},
			rbacRow{"DELETE", "/" + coll + "/{id}", "", managers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
				return "/" + coll + "/" + x.newBot(), nil
			}},
		)
	}
	// Credentials: api_keys, credentials (authtokens), ssh_credentials.
	type credKind struct {
		coll  string
		body  func(x *rbacFixture) map[string]any // a valid create body
		newOf func(x *rbacFixture, owner string) string
	}
	for _, k := range []credKind{
		{"api_keys", func(*rbacFixture) map[string]any { return map[string]any{} }, (*rbacFixture).newAPIKey},
		{"credentials", func(*rbacFixture) map[string]any { return map[string]any{"acl": []string{"bind:*.example.com"}} }, (*rbacFixture).newAuthtoken},
		{"ssh_credentials", func(x *rbacFixture) map[string]any { return map[string]any{"public_key": x.sshKey()} }, (*rbacFixture).newSSHCredential},
	} {
		rows = append(rows,
			rbacRow{"GET", "/" + k.coll, "", everyone, 200, at("/" + k.coll)},
			rbacRow{"POST", "/" + k.coll, "owned by the caller", writers, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
				return "/" + k.coll, k.body(x)
			}},
			rbacRow{"POST", "/" + k.coll, "owned by another user", admins, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
				b := k.body(x)
				b["owner_id"] = x.other
				return "/" + k.coll, b
			}},
			rbacRow{"GET", "/" + k.coll + "/{id}", "owned by another user", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
				return "/" + k.coll + "/" + k.newOf(x, x.other), nil
			}},
			rbacRow{"PATCH", "/" + k.coll + "/{id}", "owned by the caller", writers, 200, func(x *rbacFixture, p *rbacPrincipal) (string, any) {
				return "/" + k.coll + "/" + k.newOf(x, p.id), map[string]any{"description": "changed"}
			}},
			rbacRow{"PATCH", "/" + k.coll + "/{id}", "owned by another user", admins, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
				return "/" + k.coll + "/" + k.newOf(x, x.other), map[string]any{"description": "changed"}
			}},
			rbacRow{"DELETE", "/" + k.coll + "/{id}", "owned by the caller", writers, 204, func(x *rbacFixture, p *rbacPrincipal) (string, any) {
				return "/" + k.coll + "/" + k.newOf(x, p.id), nil
			}},
			rbacRow{"DELETE", "/" + k.coll + "/{id}", "owned by another user", admins, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
				return "/" + k.coll + "/" + k.newOf(x, x.other), nil
			}},
		)
	}
	rows = append(rows,
		rbacRow{"GET", "/tunnel_sessions", "", everyone, 200, at("/tunnel_sessions")},
		rbacRow{"GET", "/tunnel_sessions/{id}", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/tunnel_sessions/" + x.session, nil
		}},
		rbacRow{"POST", "/tunnel_sessions/{id}/stop", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/tunnel_sessions/" + x.session + "/stop", map[string]any{}
		}},
		rbacRow{"POST", "/tunnel_sessions/{id}/restart", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/tunnel_sessions/" + x.session + "/restart", map[string]any{}
		}},
		rbacRow{"GET", "/endpoints", "", everyone, 200, at("/endpoints")},
		rbacRow{"GET", "/endpoints/{id}", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/endpoints/" + x.ep, nil
		}},
	)
	// Reservations.
	rows = append(rows,
		rbacRow{"GET", "/reserved_domains", "", everyone, 200, at("/reserved_domains")},
		rbacRow{"POST", "/reserved_domains", "", writers, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/reserved_domains", map[string]any{"domain": x.domainName()}
		}},
		rbacRow{"GET", "/reserved_domains/{id}", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/reserved_domains/" + x.newDomain(), nil
		}},
		rbacRow{"PATCH", "/reserved_domains/{id}", "", writers, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/reserved_domains/" + x.newDomain(), map[string]any{"description": "changed"}
		}},
		rbacRow{"DELETE", "/reserved_domains/{id}", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/reserved_domains/" + x.newDomain(), nil
		}},
		rbacRow{"DELETE", "/reserved_domains/{id}/certificate_management_policy", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/reserved_domains/" + x.newDomain() + "/certificate_management_policy", nil
		}},
		rbacRow{"DELETE", "/reserved_domains/{id}/certificate", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/reserved_domains/" + x.newDomain() + "/certificate", nil
		}},
		rbacRow{"GET", "/reserved_addrs", "", everyone, 200, at("/reserved_addrs")},
		rbacRow{"POST", "/reserved_addrs", "", writers, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/reserved_addrs", map[string]any{"addr": x.addr(), "region": "eu"}
		}},
		rbacRow{"GET", "/reserved_addrs/{id}", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/reserved_addrs/" + x.newAddr(), nil
		}},
		rbacRow{"PATCH", "/reserved_addrs/{id}", "", writers, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/reserved_addrs/" + x.newAddr(), map[string]any{"description": "changed"}
		}},
		rbacRow{"DELETE", "/reserved_addrs/{id}", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/reserved_addrs/" + x.newAddr(), nil
		}},
	)
	// IP policies, rules and restrictions.
	rows = append(rows,
		rbacRow{"GET", "/ip_policies", "", everyone, 200, at("/ip_policies")},
		rbacRow{"POST", "/ip_policies", "", writers, 201, func(*rbacFixture, *rbacPrincipal) (string, any) {
			return "/ip_policies", map[string]any{"description": "made"}
		}},
		rbacRow{"GET", "/ip_policies/{id}", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/ip_policies/" + x.newPolicy(), nil
		}},
		rbacRow{"PATCH", "/ip_policies/{id}", "", writers, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/ip_policies/" + x.newPolicy(), map[string]any{"description": "changed"}
		}},
		rbacRow{"DELETE", "/ip_policies/{id}", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/ip_policies/" + x.newPolicy(), nil
		}},
		rbacRow{"GET", "/ip_policy_rules", "", everyone, 200, at("/ip_policy_rules")},
		rbacRow{"POST", "/ip_policy_rules", "", writers, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/ip_policy_rules", map[string]any{"ip_policy_id": x.newPolicy(), "cidr": "10.1.0.0/16", "action": "allow"}
		}},
		rbacRow{"GET", "/ip_policy_rules/{id}", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/ip_policy_rules/" + x.newRule(), nil
		}},
		rbacRow{"PATCH", "/ip_policy_rules/{id}", "", writers, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/ip_policy_rules/" + x.newRule(), map[string]any{"description": "changed"}
		}},
		rbacRow{"DELETE", "/ip_policy_rules/{id}", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/ip_policy_rules/" + x.newRule(), nil
		}},
		rbacRow{"GET", "/ip_restrictions", "", everyone, 200, at("/ip_restrictions")},
		rbacRow{"POST", "/ip_restrictions", "", writers, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/ip_restrictions", map[string]any{"type": "endpoints", "ip_policy_ids": []string{x.newPolicy()}}
		}},
		rbacRow{"GET", "/ip_restrictions/{id}", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/ip_restrictions/" + x.newRestriction(), nil
		}},
		rbacRow{"PATCH", "/ip_restrictions/{id}", "", writers, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/ip_restrictions/" + x.newRestriction(), map[string]any{"description": "changed"}
		}},
		rbacRow{"DELETE", "/ip_restrictions/{id}", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/ip_restrictions/" + x.newRestriction(), nil
		}},
		rbacRow{"GET", "/event_destinations", "", everyone, 200, at("/event_destinations")},
		rbacRow{"POST", "/event_destinations", "", writers, 201, func(*rbacFixture, *rbacPrincipal) (string, any) {
			return "/event_destinations", natsDestination
		}},
		rbacRow{"GET", "/event_destinations/{id}", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_destinations/" + x.newDestination(), nil
		}},
		rbacRow{"PATCH", "/event_destinations/{id}", "", writers, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_destinations/" + x.newDestination(), map[string]any{"description": "changed"}
		}},
		rbacRow{"DELETE", "/event_destinations/{id}", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_destinations/" + x.newDestination(), nil
		}},
		rbacRow{"GET", "/event_subscriptions", "", everyone, 200, at("/event_subscriptions")},
		rbacRow{"POST", "/event_subscriptions", "", writers, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_subscriptions", map[string]any{"sources": []any{map[string]any{"type": "api_key_created.v0"}},
				"destination_ids": []string{x.newDestination()}}
		}},
		rbacRow{"GET", "/event_subscriptions/{id}", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_subscriptions/" + x.newSubscription(), nil
		}},
		rbacRow{"PATCH", "/event_subscriptions/{id}", "", writers, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_subscriptions/" + x.newSubscription(), map[string]any{"description": "changed"}
		}},
		rbacRow{"DELETE", "/event_subscriptions/{id}", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_subscriptions/" + x.newSubscription(), nil
		}},
		rbacRow{"GET", "/event_subscriptions/{id}/sources", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_subscriptions/" + x.newSubscription() + "/sources", nil
		}},
		rbacRow{"POST", "/event_subscriptions/{id}/sources", "", writers, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_subscriptions/" + x.newSubscription() + "/sources", map[string]any{"type": "credential_created.v0", "filter": "true"}
		}},
		rbacRow{"GET", "/event_subscriptions/{id}/sources/{type}", "", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_subscriptions/" + x.newSubscription() + "/sources/api_key_created.v0", nil
		}},
		rbacRow{"PATCH", "/event_subscriptions/{id}/sources/{type}", "", writers, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_subscriptions/" + x.newSubscription() + "/sources/api_key_created.v0", map[string]any{"filter": "false"}
		}},
		rbacRow{"DELETE", "/event_subscriptions/{id}/sources/{type}", "", writers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/event_subscriptions/" + x.newSubscription() + "/sources/api_key_created.v0", nil
		}},
		rbacRow{"GET", "/event_types", "", everyone, 200, at("/event_types")},
	)
	// Users, invitations, accounts.
	rows = append(rows,
		rbacRow{"GET", "/users", "", users, 200, at("/users")},
		rbacRow{"GET", "/users/{id}", "", users, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/users/" + x.other, nil
		}},
		rbacRow{"PATCH", "/users/{id}", "roles of a non-admin", managers, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/users/" + x.newMember(false), map[string]any{"developer": "rw", "team": "invite", "billing": true}
		}},
		rbacRow{"PATCH", "/users/{id}", "grant admin", admins, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/users/" + x.newMember(false), map[string]any{"admin": true}
		}},
		rbacRow{"PATCH", "/users/{id}", "roles of an admin", admins, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/users/" + x.newMember(true), map[string]any{"developer": "rw"}
		}},
		rbacRow{"DELETE", "/users/{id}", "a non-admin", managers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/users/" + x.newMember(false), nil
		}},
		rbacRow{"DELETE", "/users/{id}", "an admin", admins, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/users/" + x.newMember(true), nil
		}},
		rbacRow{"GET", "/invitations", "", users, 200, at("/invitations")},
		rbacRow{"POST", "/invitations", "least roles", inviters, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/invitations", map[string]any{"email": x.email()}
		}},
		rbacRow{"POST", "/invitations", "as team manager", managers, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/invitations", map[string]any{"email": x.email(), "team": "manager"}
		}},
		rbacRow{"POST", "/invitations", "as admin", admins, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/invitations", map[string]any{"email": x.email(), "admin": true}
		}},
		rbacRow{"GET", "/invitations/{id}", "", users, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/invitations/" + x.newInvitation(), nil
		}},
		rbacRow{"DELETE", "/invitations/{id}", "made by another", managers, 204, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/invitations/" + x.newInvitation(), nil
		}},
		rbacRow{"POST", "/invitations/accept", "addressed to the caller, with their key", users, 201, func(x *rbacFixture, p *rbacPrincipal) (string, any) {
			return "/invitations/accept", map[string]any{"token": x.invitationFor(p)}
		}},
		rbacRow{"GET", "/accounts", "", everyone, 200, at("/accounts")},
		rbacRow{"GET", "/accounts/{id}", "the key's account", everyone, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/accounts/" + x.acct, nil
		}},
		rbacRow{"PATCH", "/accounts/{id}", "the key's account", admins, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/accounts/" + x.acct, map[string]any{"name": fmt.Sprintf("renamed %d", x.next())}
		}},
		rbacRow{"POST", "/accounts/{id}/api_keys", "another account of the user", users, 201, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/accounts/" + x.another + "/api_keys", map[string]any{}
		}},
		rbacRow{"GET", "/audit_events", "", managers, 200, at("/audit_events")},
		rbacRow{"GET", "/audit_events/{id}", "", managers, 200, func(x *rbacFixture, _ *rbacPrincipal) (string, any) {
			return "/audit_events/" + x.auditEventID(), nil
		}},
		rbacRow{"GET", "/regions", "", everyone, 200, at("/regions")},
	)
	return rows
}

func TestRBACMatrix(t *testing.T) {
	cfg := cptest.Config{RateLimit: -1, AuthFailureLimit: -1}
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			x := newRBACFixture(t, cptest.NewEnv(t, storetest.DSN(t, d), cfg))
			for _, row := range rbacRows() {
				name := row.method + " " + row.path
				if row.variant != "" {
					name += " (" + row.variant + ")"
				}
				t.Run(name, func(t *testing.T) {
					for _, p := range x.roles {
						x.t = t
						x.e.T = t
						path, body := row.setup(x, p)
						before := x.e.Revision()
						r := x.e.Call(row.method, path, p.key, body)
						if row.allowed&p.role != 0 {
							if r.Status != row.ok {
								t.Errorf("%s: %s %s = %d, want %d (allowed): %s", p.name, row.method, path, r.Status, row.ok, r.Body)
							}
							continue
						}
						if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), string(codes.APIForbidden)) {
							t.Errorf("%s: %s %s = %d, want 403 %s (denied): %s", p.name, row.method, path, r.Status, codes.APIForbidden, r.Body)
						}
						if after := x.e.Revision(); after != before {
							t.Errorf("%s: a denied %s %s moved the revision from %d to %d", p.name, row.method, path, before, after)
						}
					}
				})
			}
		})
	}
}

// The matrix names every method of every route: a method the router serves
// without a row, or a row for a method it does not serve, fails.
func TestRBACMatrixCoversEveryRoute(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{RateLimit: -1, AuthFailureLimit: -1})
	want := map[string][]string{}
	for _, row := range rbacRows() {
		if !slices.Contains(want[row.path], row.method) {
			want[row.path] = append(want[row.path], row.method)
		}
	}
	// Every collection the API serves (api.go and the route files).
	for _, coll := range []string{"bot_users", "service_users", "api_keys", "credentials", "ssh_credentials",
		"reserved_domains", "reserved_addrs", "ip_policies", "ip_policy_rules", "ip_restrictions", "users",
		"invitations", "accounts", "tunnel_sessions", "endpoints", "audit_events", "event_destinations", "event_subscriptions"} {
		if _, ok := want["/"+coll]; !ok {
			t.Errorf("no row for /%s", coll)
		}
		if _, ok := want["/"+coll+"/{id}"]; !ok {
			t.Errorf("no row for /%s/{id}", coll)
		}
	}
	for path, methods := range want {
		probe := strings.ReplaceAll(path, "{id}", "x")
		r := e.Call("PUT", probe, e.Admin, nil) // no route serves PUT
		if r.Status != http.StatusMethodNotAllowed {
			t.Errorf("PUT %s = %d, want 405: is %s routed?", probe, r.Status, path)
			continue
		}
		var got []string
		for _, m := range strings.Split(r.Header.Get("Allow"), ",") {
			got = append(got, strings.TrimSpace(m))
		}
		slices.Sort(got)
		slices.Sort(methods)
		if !slices.Equal(got, methods) {
			t.Errorf("%s serves %v; the matrix has rows for %v", path, got, methods)
		}
	}
}

func newRBACFixture(t *testing.T, e *cptest.Env) *rbacFixture {
	t.Helper()
	ctx := cptest.Ctx(t)
	x := &rbacFixture{e: e, t: t, acct: e.Dev.AccountID, admin: e.Admin}
	another, err := e.Store.CreateAccount(ctx, store.SystemActor, "another")
	if err != nil {
		t.Fatal(err)
	}
	x.another = another.ID
	for i := 0; i < roleCount; i++ {
		p := &rbacPrincipal{role: roleSet(1) << i, name: roleNames[i]}
		if p.role == rBot {
			b, err := e.Store.CreateBotUser(ctx, store.SystemActor, x.acct, store.BotUserCreate{Name: "matrix bot", Active: true})
			if err != nil {
				t.Fatal(err)
			}
			p.id = b.ID
			p.key = e.KeyFor(x.acct, b.ID)
		} else {
			p.email = p.name + "@matrix.example"
			p.id, p.key = e.AddUser(x.acct, p.email, roleMemberships[i])
			if err := e.Store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: x.another, UserID: p.id,
				Developer: store.DeveloperRO, Team: store.TeamRO}); err != nil {
				t.Fatal(err)
			}
		}
		x.roles = append(x.roles, p)
	}
	x.other, _ = e.AddUser(x.acct, "other@matrix.example", store.Membership{Developer: store.DeveloperRW, Team: store.TeamRO})
	// An online agent session with one endpoint, on an edge that takes
	// commands.
	x.session, x.ep = ids.New(ids.PrefixAgentSession), ids.New(ids.PrefixEndpoint)
	e.Core.Registry().RegisterEdge("eu", okCommander{})
	if err := e.Core.Registry().ReportSessions(ctx, "eu", []controlplane.SessionInfo{{ID: x.session, AccountID: x.acct, CredentialID: e.Dev.AuthtokenID,
		PrincipalID: e.Dev.UserID, Transport: "tcp", StartedAt: time.Now(),
		Endpoints: []snapshot.Endpoint{{ID: x.ep, URL: "https://matrix.example.com", Proto: "https", StartedAt: time.Now()}}}}); err != nil {
		t.Fatal(err)
	}
	return x
}

// okCommander is an edge whose agents accept every command.
type okCommander struct{}

func (okCommander) StopSession(context.Context, string) error    { return nil }
func (okCommander) RestartSession(context.Context, string) error { return nil }

func (x *rbacFixture) next() int { x.n++; return x.n }

// create makes an object with the bootstrap administrator's key and returns
// its ID.
func (x *rbacFixture) create(path string, body any) string {
	x.t.Helper()
	obj := x.e.Must(201, x.e.Call("POST", path, x.admin, body))
	return cptest.Str(obj, "id")
}

func (x *rbacFixture) newBot() string {
	return x.create("/bot_users", map[string]any{"name": fmt.Sprintf("bot %d", x.next())})
}

func (x *rbacFixture) newAPIKey(owner string) string {
	return x.create("/api_keys", map[string]any{"owner_id": owner})
}

func (x *rbacFixture) newAuthtoken(owner string) string {
	return x.create("/credentials", map[string]any{"owner_id": owner})
}

func (x *rbacFixture) newSSHCredential(owner string) string {
	return x.create("/ssh_credentials", map[string]any{"owner_id": owner, "public_key": x.sshKey()})
}

// sshKey returns a fresh authorized_keys line.
func (x *rbacFixture) sshKey() string {
	x.t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		x.t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		x.t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

func (x *rbacFixture) domainName() string { return fmt.Sprintf("rbac-%d.example.com", x.next()) }

func (x *rbacFixture) newDomain() string {
	return x.create("/reserved_domains", map[string]any{"domain": x.domainName()})
}

func (x *rbacFixture) addr() string { return fmt.Sprintf("1.tcp.example.com:%d", 20000+x.next()) }

func (x *rbacFixture) newAddr() string {
	return x.create("/reserved_addrs", map[string]any{"addr": x.addr(), "region": "eu"})
}

func (x *rbacFixture) newPolicy() string {
	return x.create("/ip_policies", map[string]any{"description": "p"})
}

func (x *rbacFixture) newRule() string {
	return x.create("/ip_policy_rules", map[string]any{"ip_policy_id": x.newPolicy(), "cidr": "10.2.0.0/16", "action": "deny"})
}

// natsDestination is the body of an event destination (never delivered to
// in these tests: no Deliverer runs).
var natsDestination = map[string]any{"format": "JSON", "target": map[string]any{"nats": map[string]any{"url": "nats://nats.invalid:4222", "subject": "rbac.events"}}}

func (x *rbacFixture) newDestination() string {
	return x.create("/event_destinations", natsDestination)
}

func (x *rbacFixture) newSubscription() string {
	return x.create("/event_subscriptions", map[string]any{"sources": []any{map[string]any{"type": "api_key_created.v0"}},
		"destination_ids": []string{x.newDestination()}})
}

func (x *rbacFixture) newRestriction() string {
	return x.create("/ip_restrictions", map[string]any{"type": "endpoints", "ip_policy_ids": []string{x.newPolicy()}})
}

func (x *rbacFixture) email() string { return fmt.Sprintf("invitee-%d@matrix.example", x.next()) }

func (x *rbacFixture) newInvitation() string {
	return x.create("/invitations", map[string]any{"email": x.email()})
}

// newMember adds a user to the account (an administrator when admin) and
// returns their ID.
func (x *rbacFixture) newMember(admin bool) string {
	id, _ := x.e.AddUser(x.acct, x.email(), store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO, Admin: admin})
	return id
}

// invitationFor invites p's address to a new account and returns the
// accept token (bots have no address: any token does, they are refused).
func (x *rbacFixture) invitationFor(p *rbacPrincipal) string {
	x.t.Helper()
	ctx := cptest.Ctx(x.t)
	a, err := x.e.Store.CreateAccount(ctx, store.SystemActor, fmt.Sprintf("side %d", x.next()))
	if err != nil {
		x.t.Fatal(err)
	}
	email := p.email
	if email == "" {
		email = x.email()
	}
	_, tok, err := x.e.Store.CreateInvitation(ctx, store.SystemActor, a.ID, store.InvitationCreate{Email: email,
		Developer: store.DeveloperRO, Team: store.TeamRO})
	if err != nil {
		x.t.Fatal(err)
	}
	return tok.Reveal()
}

func (x *rbacFixture) auditEventID() string {
	x.t.Helper()
	evs, _, err := x.e.Store.ListAuditEvents(cptest.Ctx(x.t), x.acct, store.Page{Limit: 1})
	if err != nil || len(evs) == 0 {
		x.t.Fatalf("audit events: %v, %v", evs, err)
	}
	return evs[0].ID
}
