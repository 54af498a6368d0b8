package store

import (
	"errors"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
)

// addMember creates a user and makes them a member of the account.
func addMember(t testing.TB, s *Store, accountID, email string, m Membership) *User {
	t.Helper()
	ctx := testCtx(t)
	u, err := s.CreateUser(ctx, SystemActor, email, "U "+email)
	if err != nil {
		t.Fatal(err)
	}
	m.AccountID, m.UserID = accountID, u.ID
	if err := s.PutMembership(ctx, SystemActor, m); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestMembersListGetUpdate(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		u := addMember(t, s, f.account.ID, "Dev@Example.com", Membership{Developer: DeveloperRO, Team: TeamRO})

		list, more, err := s.ListMembers(ctx, f.account.ID, Page{})
		if err != nil || more || len(list) != 2 {
			t.Fatalf("ListMembers = %d members, more=%v, %v", len(list), more, err)
		}
		byID := map[string]Member{} // IDs created in the same second sort at random
		for _, m := range list {
			byID[m.User.ID] = m
		}
		if m := byID[u.ID]; m.User.Email != "dev@example.com" || m.Roles.Developer != DeveloperRO || m.Roles.Admin {
			t.Fatalf("ListMembers = %+v", list)
		}
		if m := byID[f.admin.ID]; !m.Roles.Admin {
			t.Fatalf("ListMembers = %+v", list)
		}
		page, more, err := s.ListMembers(ctx, f.account.ID, Page{Limit: 1})
		if err != nil || !more || len(page) != 1 || page[0].User.ID != list[0].User.ID {
			t.Fatalf("first page of 1 = %+v, more=%v, %v", page, more, err)
		}
		page, more, err = s.ListMembers(ctx, f.account.ID, Page{Limit: 1, BeforeID: page[0].User.ID})
		if err != nil || more || len(page) != 1 || page[0].User.ID != list[1].User.ID {
			t.Fatalf("second page of 1 = %+v, more=%v, %v", page, more, err)
		}

		rw, mgr, yes := DeveloperRW, TeamManager, true
		before := rev(t, s)
		m, err := s.UpdateMember(ctx, f.actor, f.account.ID, u.ID, MemberUpdate{Developer: &rw, Team: &mgr, Billing: &yes}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.Roles.Developer != DeveloperRW || m.Roles.Team != TeamManager || !m.Roles.Billing || m.Roles.Admin {
			t.Fatalf("updated roles = %+v", m.Roles)
		}
		got, err := s.GetMember(ctx, f.account.ID, u.ID)
		if err != nil || got.Roles != m.Roles {
			t.Fatalf("GetMember = %+v, %v; want roles %+v", got, err, m.Roles)
		}
		if r := rev(t, s); r != before+1 {
			t.Fatalf("revision %d after one update from %d", r, before)
		}
		evs, _, _ := s.ListAuditEvents(ctx, f.account.ID, Page{Limit: 1})
		if len(evs) != 1 || evs[0].Type != "membership_updated.v0" || evs[0].ActorID != f.admin.ID || evs[0].ObjectID != u.ID {
			t.Fatalf("last audit event = %+v", evs)
		}

		// The same roles again: nothing happens.
		if _, err := s.UpdateMember(ctx, f.actor, f.account.ID, u.ID, MemberUpdate{Developer: &rw}, nil); err != nil {
			t.Fatal(err)
		}
		// A bad role and a refusing check change nothing.
		bad := DeveloperRole("owner")
		_, err = s.UpdateMember(ctx, f.actor, f.account.ID, u.ID, MemberUpdate{Developer: &bad}, nil)
		wantCode(t, err, codes.RoleInvalid)
		refuse := errors.New("refused")
		var seen Membership
		ro := DeveloperRO
		_, err = s.UpdateMember(ctx, f.actor, f.account.ID, u.ID, MemberUpdate{Developer: &ro}, func(cur Membership) error {
			seen = cur
			return refuse
		})
		if !errors.Is(err, refuse) || seen.Team != TeamManager {
			t.Fatalf("check: err = %v, saw %+v", err, seen)
		}
		if r := rev(t, s); r != before+1 {
			t.Fatalf("no-op and refused updates moved the revision to %d", r)
		}
		if _, err := s.UpdateMember(ctx, f.actor, f.account.ID, f.admin.ID+"x", MemberUpdate{}, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown member: %v", err)
		}
		err = s.PutMembership(ctx, SystemActor, Membership{AccountID: f.account.ID, UserID: u.ID, Developer: DeveloperRW, Team: "boss"})
		wantCode(t, err, codes.RoleInvalid)
	})
}

func TestLastAdminIsKept(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		no := false
		before := rev(t, s)
		_, err := s.UpdateMember(ctx, f.actor, f.account.ID, f.admin.ID, MemberUpdate{Admin: &no}, nil)
		wantConflictCode(t, err, codes.LastAdmin)
		_, err = s.RemoveMember(ctx, f.actor, f.account.ID, f.admin.ID, nil)
		wantConflictCode(t, err, codes.LastAdmin)
		err = s.PutMembership(ctx, SystemActor, Membership{AccountID: f.account.ID, UserID: f.admin.ID, Developer: DeveloperRW, Team: TeamRO})
		wantConflictCode(t, err, codes.LastAdmin)
		if r := rev(t, s); r != before {
			t.Fatalf("refused changes moved the revision to %d", r)
		}

		// A deactivated second administrator does not count.
		other := addMember(t, s, f.account.ID, "second@example.com", Membership{Developer: DeveloperRW, Team: TeamRO, Admin: true})
		if err := s.SetUserActive(ctx, SystemActor, other.ID, false); err != nil {
			t.Fatal(err)
		}
		_, err = s.UpdateMember(ctx, f.actor, f.account.ID, f.admin.ID, MemberUpdate{Admin: &no}, nil)
		wantConflictCode(t, err, codes.LastAdmin)

		// An active one does.
		if err := s.SetUserActive(ctx, SystemActor, other.ID, true); err != nil {
			t.Fatal(err)
		}
		m, err := s.UpdateMember(ctx, f.actor, f.account.ID, f.admin.ID, MemberUpdate{Admin: &no}, nil)
		if err != nil || m.Roles.Admin {
			t.Fatalf("demoting with another admin: %+v, %v", m, err)
		}
		_, err = s.RemoveMember(ctx, f.actor, f.account.ID, other.ID, nil)
		wantConflictCode(t, err, codes.LastAdmin)
	})
}

// Two administrators demote each other at the same time: one wins, and the
// account keeps one administrator.
func TestLastAdminRace(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		for i := 0; i < 5; i++ {
			f := newFixture(t, s)
			b := addMember(t, s, f.account.ID, ids.New("x")+"@example.com", Membership{Developer: DeveloperRW, Team: TeamRO, Admin: true})
			no := false
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for j, id := range []string{f.admin.ID, b.ID} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if j == 0 {
						_, errs[j] = s.UpdateMember(ctx, f.actor, f.account.ID, id, MemberUpdate{Admin: &no}, nil)
					} else {
						_, errs[j] = s.RemoveMember(ctx, f.actor, f.account.ID, id, nil)
					}
				}()
			}
			wg.Wait()
			failed := 0
			for _, err := range errs {
				if err != nil {
					wantConflictCode(t, err, codes.LastAdmin)
					failed++
				}
			}
			if failed != 1 {
				t.Fatalf("round %d: %d of 2 concurrent demotions failed, want 1: %v", i, failed, errs)
			}
			list, _, err := s.ListMembers(ctx, f.account.ID, Page{})
			if err != nil {
				t.Fatal(err)
			}
			admins := 0
			for _, m := range list {
				if m.Roles.Admin {
					admins++
				}
			}
			if admins != 1 {
				t.Fatalf("round %d: %d administrators left", i, admins)
			}
		}
	})
}

func TestRemoveMemberDeletesCredentialsThere(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		g := newFixture(t, s)
		u := addMember(t, s, f.account.ID, "both@example.com", Membership{Developer: DeveloperRW, Team: TeamRO})
		if err := s.PutMembership(ctx, SystemActor, Membership{AccountID: g.account.ID, UserID: u.ID, Developer: DeveloperRO, Team: TeamRO}); err != nil {
			t.Fatal(err)
		}
		k, _, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		at, _, err := s.CreateAuthtoken(ctx, f.actor, f.account.ID, AuthtokenCreate{OwnerID: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := s.CreateSSHCredential(ctx, f.actor, f.account.ID, SSHCredentialCreate{OwnerID: u.ID, PublicKey: testSSHKey})
		if err != nil {
			t.Fatal(err)
		}
		kg, _, err := s.CreateAPIKey(ctx, g.actor, g.account.ID, APIKeyCreate{OwnerID: u.ID})
		if err != nil {
			t.Fatal(err)
		}

		// A refusing check removes nothing.
		refuse := errors.New("no")
		if _, err := s.RemoveMember(ctx, f.actor, f.account.ID, u.ID, func(Membership) error { return refuse }); !errors.Is(err, refuse) {
			t.Fatalf("refused removal: %v", err)
		}
		if _, err := s.GetAPIKey(ctx, f.account.ID, k.ID); err != nil {
			t.Fatalf("a refused removal deleted a key: %v", err)
		}

		before := rev(t, s)
		deleted, err := s.RemoveMember(ctx, f.actor, f.account.ID, u.ID, nil)
		if err != nil || len(deleted) != 3 {
			t.Fatalf("RemoveMember = %v, %v; want 3 credentials", deleted, err)
		}
		if _, err := s.GetAPIKey(ctx, f.account.ID, k.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("API key survived: %v", err)
		}
		if _, err := s.GetAuthtoken(ctx, f.account.ID, at.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("authtoken survived: %v", err)
		}
		if _, err := s.GetSSHCredential(ctx, f.account.ID, sc.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("SSH credential survived: %v", err)
		}
		if _, err := s.GetAPIKey(ctx, g.account.ID, kg.ID); err != nil {
			t.Fatalf("the key in the other account went too: %v", err)
		}
		if _, err := s.GetUser(ctx, u.ID); err != nil {
			t.Fatalf("a user still in another account was deleted: %v", err)
		}
		if r := rev(t, s); r != before+1 {
			t.Fatalf("removal took revisions %d..%d, want one", before, r)
		}
		evs, _, _ := s.ListAuditEvents(ctx, f.account.ID, Page{})
		seen := map[string]bool{}
		for _, e := range evs {
			if e.Revision == before+1 && e.ActorID == f.admin.ID {
				seen[e.Type+" "+e.ObjectID] = true
			}
		}
		for _, w := range []string{"membership_deleted.v0 " + u.ID, "api_key_deleted.v0 " + k.ID,
			"credential_deleted.v0 " + at.ID, "ssh_credential_deleted.v0 " + sc.ID} {
			if !seen[w] {
				t.Errorf("missing audit event %s: %v", w, seen)
			}
		}

		// Leaving the last account deletes the user.
		if _, err := s.RemoveMember(ctx, g.actor, g.account.ID, u.ID, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetUser(ctx, u.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a user in no account survived: %v", err)
		}
		if _, err := s.RemoveMember(ctx, g.actor, g.account.ID, u.ID, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second removal: %v", err)
		}
	})
}

func TestAccountsOfAndRename(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		g := newFixture(t, s)
		if err := s.PutMembership(ctx, SystemActor, Membership{AccountID: g.account.ID, UserID: f.admin.ID, Developer: DeveloperRO, Team: TeamInvite}); err != nil {
			t.Fatal(err)
		}
		list, more, err := s.ListAccountsOf(ctx, f.admin.ID, Page{})
		if err != nil || more || len(list) != 2 {
			t.Fatalf("ListAccountsOf = %+v, %v, %v", list, more, err)
		}
		byID := map[string]AccountMembership{}
		for _, am := range list {
			byID[am.Account.ID] = am
		}
		if am := byID[g.account.ID]; am.Roles.Team != TeamInvite || am.Roles.Admin || am.Account.Name != "acme" {
			t.Fatalf("ListAccountsOf = %+v", list)
		}
		if am := byID[f.account.ID]; !am.Roles.Admin || am.Roles.UserID != f.admin.ID {
			t.Fatalf("ListAccountsOf = %+v", list)
		}
		// A membership deactivated in an account (SCIM active: false) is
		// not one of the user's accounts: they cannot act or sign in there.
		if _, err := s.SCIMUpdateUser(ctx, g.actor, g.account.ID, f.admin.ID, func(cur SCIMUserInput) (SCIMUserInput, error) {
			cur.Active = false
			return cur, nil
		}); err != nil {
			t.Fatal(err)
		}
		if list, _, err := s.ListAccountsOf(ctx, f.admin.ID, Page{}); err != nil || len(list) != 1 || list[0].Account.ID != f.account.ID {
			t.Fatalf("ListAccountsOf after deactivation in %s = %+v, %v", g.account.ID, list, err)
		}
		a, err := s.RenameAccount(ctx, f.actor, f.account.ID, "renamed")
		if err != nil || a.Name != "renamed" {
			t.Fatalf("RenameAccount = %+v, %v", a, err)
		}
		before := rev(t, s)
		if _, err := s.RenameAccount(ctx, f.actor, f.account.ID, "renamed"); err != nil || rev(t, s) != before {
			t.Fatalf("renaming to the same name: %v, revision %d -> %d", err, before, rev(t, s))
		}
		if _, err := s.RenameAccount(ctx, f.actor, f.account.ID, "bad\x00name"); err == nil {
			t.Fatal("a name with a control character was accepted")
		}
		creator, err := s.APIKeyCreator(ctx, f.account.ID, ids.New(ids.PrefixAPIKey))
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("creator of an unknown key = %q, %v", creator, err)
		}
		k, _, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: f.admin.ID})
		if err != nil {
			t.Fatal(err)
		}
		if creator, err := s.APIKeyCreator(ctx, f.account.ID, k.ID); err != nil || creator != f.admin.ID {
			t.Fatalf("APIKeyCreator = %q, %v", creator, err)
		}
	})
}
