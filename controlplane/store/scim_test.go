package store

import (
	"errors"
	"slices"
	"testing"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
)

// scimSetUp is an account with an administrator and a second account the
// same person administers: SCIM changes in the first must not touch the
// second.
func scimSetUp(t *testing.T, s *Store) (a, b fixture) {
	t.Helper()
	a, b = newFixture(t, s), newFixture(t, s)
	return a, b
}

func TestSCIMUserLifecycle(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		a, b := scimSetUp(t, s)
		// A user who is a member of b already is reused by address.
		shared, err := s.SCIMCreateUser(ctx, b.actor, b.account.ID, SCIMUserInput{Email: "Grace@Example.com", DisplayName: "Grace", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		su, err := s.SCIMCreateUser(ctx, a.actor, a.account.ID, SCIMUserInput{Email: "grace@example.com", DisplayName: "G. H.", Active: true, ExternalID: "ext-1"})
		if err != nil {
			t.Fatal(err)
		}
		if su.User.ID != shared.User.ID || su.User.Name != "Grace" || su.Roles.Developer != DeveloperRO || su.Roles.Admin || !su.Active || su.ExternalID != "ext-1" {
			t.Fatalf("created %+v; want the existing user %s with default roles", su, shared.User.ID)
		}
		_, err = s.SCIMCreateUser(ctx, a.actor, a.account.ID, SCIMUserInput{Email: "grace@example.com", Active: true})
		wantConflictCode(t, err, codes.SCIMUniqueness)
		_, err = s.SCIMCreateUser(ctx, a.actor, a.account.ID, SCIMUserInput{Email: "not an address", Active: true})
		wantCode(t, err, codes.SCIMUserName)

		// Lists: filters and 1-based paging.
		for _, e := range []string{"x1@example.com", "x2@example.com"} {
			if _, err := s.SCIMCreateUser(ctx, a.actor, a.account.ID, SCIMUserInput{Email: e, Active: true}); err != nil {
				t.Fatal(err)
			}
		}
		got, total, err := s.SCIMListUsers(ctx, a.account.ID, SCIMUserFilter{Email: "GRACE@example.com"}, SCIMPage{StartIndex: 1, Count: 10})
		if err != nil || total != 1 || len(got) != 1 || got[0].User.ID != su.User.ID {
			t.Fatalf("filter userName: %v %d %v", got, total, err)
		}
		got, total, err = s.SCIMListUsers(ctx, a.account.ID, SCIMUserFilter{ExternalID: "ext-1"}, SCIMPage{Count: 10})
		if err != nil || total != 1 || len(got) != 1 {
			t.Fatalf("filter externalId: %v %d %v", got, total, err)
		}
		got, total, err = s.SCIMListUsers(ctx, a.account.ID, SCIMUserFilter{Email: "nobody@example.com"}, SCIMPage{Count: 10})
		if err != nil || total != 0 || len(got) != 0 {
			t.Fatalf("filter no match: %v %d %v", got, total, err)
		}
		p1, total, err := s.SCIMListUsers(ctx, a.account.ID, SCIMUserFilter{}, SCIMPage{StartIndex: 1, Count: 2})
		if err != nil || total != 4 || len(p1) != 2 {
			t.Fatalf("page 1: %d %d %v", len(p1), total, err)
		}
		p2, _, err := s.SCIMListUsers(ctx, a.account.ID, SCIMUserFilter{}, SCIMPage{StartIndex: 3, Count: 2})
		if err != nil || len(p2) != 2 || p2[0].User.ID <= p1[1].User.ID {
			t.Fatalf("page 2: %v %v", p2, err)
		}

		// Deactivating in a stops the user's key in a, not in b.
		_, keyA, err := s.CreateAPIKey(ctx, a.actor, a.account.ID, APIKeyCreate{OwnerID: su.User.ID})
		if err != nil {
			t.Fatal(err)
		}
		_, keyB, err := s.CreateAPIKey(ctx, b.actor, b.account.ID, APIKeyCreate{OwnerID: su.User.ID})
		if err != nil {
			t.Fatal(err)
		}
		from := rev(t, s)
		off, err := s.SCIMUpdateUser(ctx, a.actor, a.account.ID, su.User.ID, func(cur SCIMUserInput) (SCIMUserInput, error) {
			cur.Active, cur.DisplayName = false, "Renamed"
			return cur, nil
		})
		if err != nil || off.Active || off.User.Name != "Renamed" {
			t.Fatalf("deactivate and rename: %+v %v", off, err)
		}
		if st := lookupState(t, s, keyA.Reveal()); st.OwnerActive {
			t.Fatal("the API key in the account that deactivated the user still has an active owner")
		}
		if st := lookupState(t, s, keyB.Reveal()); !st.OwnerActive {
			t.Fatal("the API key in the other account stopped too")
		}
		// The edges learn it: the principal comes in the delta, deactivated in a only.
		d, err := s.Changes(ctx, from)
		if err != nil {
			t.Fatal(err)
		}
		if d.Principals == nil || len(d.Principals.Upsert) != 1 || !slices.Equal(d.Principals.Upsert[0].DeactivatedIn, []string{a.account.ID}) {
			t.Fatalf("delta principals: %+v", d.Principals)
		}
		snap, err := s.BuildSnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := snap.Principal(su.User.ID); p.ActiveIn(a.account.ID) || !p.ActiveIn(b.account.ID) {
			t.Fatalf("snapshot principal: %+v", p)
		}
		if m, err := s.GetMember(ctx, a.account.ID, su.User.ID); err != nil || m.User.Active {
			t.Fatalf("member of a: %+v %v, want inactive", m, err)
		}
		if m, err := s.GetMember(ctx, b.account.ID, su.User.ID); err != nil || !m.User.Active {
			t.Fatalf("member of b: %+v %v, want active", m, err)
		}
		if ok, err := s.MembershipActive(ctx, a.account.ID, su.User.ID); ok || err != nil {
			t.Fatalf("MembershipActive in a: %v %v", ok, err)
		}
		if len(auditOf(t, s, a.account.ID, "membership_updated.v0", su.User.ID)) != 1 {
			t.Fatal("no audit event for the deactivation")
		}
		// Reactivating restores the key.
		if _, err := s.SCIMUpdateUser(ctx, a.actor, a.account.ID, su.User.ID, func(cur SCIMUserInput) (SCIMUserInput, error) {
			cur.Active = true
			return cur, nil
		}); err != nil {
			t.Fatal(err)
		}
		if st := lookupState(t, s, keyA.Reveal()); !st.OwnerActive {
			t.Fatal("reactivated, the key still fails")
		}
		// A user of two accounts keeps their address.
		_, err = s.SCIMUpdateUser(ctx, a.actor, a.account.ID, su.User.ID, func(cur SCIMUserInput) (SCIMUserInput, error) {
			cur.Email = "new@example.com"
			return cur, nil
		})
		wantConflictCode(t, err, codes.SCIMMutability)

		// Delete removes the membership and the key in a; the user stays in b.
		deleted, err := s.SCIMDeleteUser(ctx, a.actor, a.account.ID, su.User.ID)
		if err != nil || len(deleted) != 1 {
			t.Fatalf("delete: %v %v", deleted, err)
		}
		if _, err := s.SCIMGetUser(ctx, a.account.ID, su.User.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		if _, err := s.SCIMGetUser(ctx, b.account.ID, su.User.ID); err != nil {
			t.Fatalf("the user left b too: %v", err)
		}
	})
}

func TestSCIMDeactivateLastAdmin(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		a := newFixture(t, s)
		before := rev(t, s)
		_, err := s.SCIMUpdateUser(ctx, a.actor, a.account.ID, a.admin.ID, func(cur SCIMUserInput) (SCIMUserInput, error) {
			cur.Active = false
			return cur, nil
		})
		wantConflictCode(t, err, codes.LastAdmin)
		if rev(t, s) != before {
			t.Fatal("a refused change changed the store")
		}
	})
}

func TestSCIMGroupRoles(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		a := newFixture(t, s)
		u, err := s.SCIMCreateUser(ctx, a.actor, a.account.ID, SCIMUserInput{Email: "dev@example.com", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		devs, err := s.SCIMCreateGroup(ctx, a.actor, a.account.ID, SCIMGroup{DisplayName: "developers",
			Roles: SCIMGroupRoles{Developer: DeveloperRW}, Members: []string{u.User.ID}})
		if err != nil {
			t.Fatal(err)
		}
		roles := func() Membership {
			t.Helper()
			m, err := s.GetMembership(ctx, a.account.ID, u.User.ID)
			if err != nil {
				t.Fatal(err)
			}
			return *m
		}
		if m := roles(); m.Developer != DeveloperRW || m.Team != TeamRO || m.Admin {
			t.Fatalf("in developers: %+v", m)
		}
		_, err = s.SCIMCreateGroup(ctx, a.actor, a.account.ID, SCIMGroup{DisplayName: "developers"})
		wantConflictCode(t, err, codes.SCIMUniqueness)
		_, err = s.SCIMCreateGroup(ctx, a.actor, a.account.ID, SCIMGroup{DisplayName: "x", Members: []string{"usr_nobody"}})
		wantCode(t, err, codes.SCIMMemberUnknown)
		_, err = s.SCIMCreateGroup(ctx, a.actor, a.account.ID, SCIMGroup{DisplayName: "y", Roles: SCIMGroupRoles{Team: "owner"}})
		wantCode(t, err, codes.SCIMGroupRoles)

		// Union: a second group adds team manager; developer rw stays.
		leads, err := s.SCIMCreateGroup(ctx, a.actor, a.account.ID, SCIMGroup{DisplayName: "leads",
			Roles: SCIMGroupRoles{Developer: DeveloperRO, Team: TeamManager}, Members: []string{u.User.ID}})
		if err != nil {
			t.Fatal(err)
		}
		if m := roles(); m.Developer != DeveloperRW || m.Team != TeamManager {
			t.Fatalf("in developers and leads: %+v", m)
		}
		// Changing a group's grants recomputes its members.
		if _, err := s.SCIMUpdateGroup(ctx, a.actor, a.account.ID, devs.ID, func(g SCIMGroup) (SCIMGroup, error) {
			g.Roles.Developer = ""
			return g, nil
		}); err != nil {
			t.Fatal(err)
		}
		if m := roles(); m.Developer != DeveloperRO || m.Team != TeamManager {
			t.Fatalf("developers grants nothing now: %+v", m)
		}
		// Leaving the last group falls back to the defaults.
		if _, err := s.SCIMUpdateGroup(ctx, a.actor, a.account.ID, leads.ID, func(g SCIMGroup) (SCIMGroup, error) {
			g.Members = nil
			return g, nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.SCIMDeleteGroup(ctx, a.actor, a.account.ID, devs.ID); err != nil {
			t.Fatal(err)
		}
		if m := roles(); m.Developer != DeveloperRO || m.Team != TeamRO {
			t.Fatalf("in no group: %+v", m)
		}
		gs, total, err := s.SCIMListGroups(ctx, a.account.ID, SCIMGroupFilter{DisplayName: "leads"}, SCIMPage{Count: 10})
		if err != nil || total != 1 || len(gs) != 1 || len(gs[0].Members) != 0 {
			t.Fatalf("list leads: %+v %d %v", gs, total, err)
		}
		// Removing the membership removes the user from their groups.
		if _, err := s.SCIMUpdateGroup(ctx, a.actor, a.account.ID, leads.ID, func(g SCIMGroup) (SCIMGroup, error) {
			g.Members = []string{u.User.ID}
			return g, nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SCIMDeleteUser(ctx, a.actor, a.account.ID, u.User.ID); err != nil {
			t.Fatal(err)
		}
		if g, err := s.SCIMGetGroup(ctx, a.account.ID, leads.ID); err != nil || len(g.Members) != 0 {
			t.Fatalf("group after the member left: %+v %v", g, err)
		}
	})
}

// lookupState returns the stored state of the API key tok.
func lookupState(t *testing.T, s *Store, tok string) *APIKeyAuth {
	t.Helper()
	kid, _, err := authn.ParseAPIKey(tok)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.LookupAPIKey(testCtx(t), kid)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
