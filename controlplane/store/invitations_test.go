package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/ids"
)

// clock is a settable time source for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// eachDialectClock is eachDialect with a store whose clock the test sets.
func eachDialectClock(t *testing.T, fn func(t *testing.T, s *Store, c *clock)) {
	t.Helper()
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			c := &clock{now: time.Now()}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, err := Open(ctx, storetest.DSN(t, d), Options{Now: c.Now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			fn(t, s, c)
		})
	}
}

func TestInvitationCreateListRevoke(t *testing.T) {
	eachDialectClock(t, func(t *testing.T, s *Store, c *clock) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		inv, tok, err := s.CreateInvitation(ctx, f.actor, f.account.ID, InvitationCreate{Email: " New@Example.COM ",
			Developer: DeveloperRW, Team: TeamInvite, Billing: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(inv.ID, "inv_") || inv.Email != "new@example.com" || inv.InvitedBy != f.admin.ID ||
			inv.Developer != DeveloperRW || inv.Team != TeamInvite || !inv.Billing || inv.Admin ||
			!inv.ExpiresAt.Equal(inv.CreatedAt.Add(InvitationTTL)) {
			t.Fatalf("invitation = %+v", inv)
		}
		// The token names the invitation; only its secret's hash is stored.
		kid, secret, err := authn.ParseToken(tok.Reveal())
		if err != nil || "inv_"+kid != inv.ID {
			t.Fatalf("token %q does not name %s: %v", tok.Reveal(), inv.ID, err)
		}
		_, hash, err := readInvitationSecret(ctx, s.rdb, inv.ID)
		if err != nil || hash != authn.HashSecret(secret) || strings.Contains(hash, secret) {
			t.Fatalf("stored hash %q, %v", hash, err)
		}
		got, err := s.GetInvitation(ctx, f.account.ID, inv.ID)
		if err != nil || *got != *inv {
			t.Fatalf("GetInvitation = %+v, %v; want %+v", got, err, inv)
		}
		g := newFixture(t, s)
		if _, err := s.GetInvitation(ctx, g.account.ID, inv.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("invitation seen from another account: %v", err)
		}

		before := rev(t, s)
		_, _, err = s.CreateInvitation(ctx, f.actor, f.account.ID, InvitationCreate{Email: "new@example.com", Developer: DeveloperRO, Team: TeamRO})
		wantConflictCode(t, err, codes.InvitationExists)
		_, _, err = s.CreateInvitation(ctx, f.actor, f.account.ID, InvitationCreate{Email: f.admin.Email, Developer: DeveloperRO, Team: TeamRO})
		wantConflictCode(t, err, codes.InvitationExists)
		_, _, err = s.CreateInvitation(ctx, f.actor, f.account.ID, InvitationCreate{Email: "x@example.com", Developer: "admin", Team: TeamRO})
		wantCode(t, err, codes.RoleInvalid)
		_, _, err = s.CreateInvitation(ctx, f.actor, f.account.ID, InvitationCreate{Email: "not an address", Developer: DeveloperRO, Team: TeamRO})
		wantCode(t, err, codes.APIInvalidParam)
		if r := rev(t, s); r != before {
			t.Fatalf("refused invitations moved the revision to %d", r)
		}
		// The same address may be invited to another account.
		if _, _, err := s.CreateInvitation(ctx, g.actor, g.account.ID, InvitationCreate{Email: "new@example.com", Developer: DeveloperRO, Team: TeamRO}); err != nil {
			t.Fatal(err)
		}

		// Once expired, the address can be invited again: the new
		// invitation replaces the old, whose token stops working.
		c.add(InvitationTTL + time.Second)
		inv2, tok2, err := s.CreateInvitation(ctx, f.actor, f.account.ID, InvitationCreate{Email: "new@example.com", Developer: DeveloperRO, Team: TeamRO})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetInvitation(ctx, f.account.ID, inv.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired invitation kept: %v", err)
		}
		_, err = s.AcceptInvitation(ctx, InvitationAccept{Token: tok.Reveal(), Name: "N"})
		wantCode(t, err, codes.InvitationInvalid)

		list, more, err := s.ListInvitations(ctx, f.account.ID, Page{})
		if err != nil || more || len(list) != 1 || list[0].ID != inv2.ID {
			t.Fatalf("ListInvitations = %+v, %v, %v", list, more, err)
		}

		// A refusing check keeps the invitation; deleting it kills the token.
		refuse := errors.New("no")
		if err := s.DeleteInvitation(ctx, f.actor, f.account.ID, inv2.ID, func(got *Invitation) error {
			if got.ID != inv2.ID {
				t.Errorf("check saw %s", got.ID)
			}
			return refuse
		}); !errors.Is(err, refuse) {
			t.Fatalf("refused delete: %v", err)
		}
		if err := s.DeleteInvitation(ctx, f.actor, f.account.ID, inv2.ID, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteInvitation(ctx, f.actor, f.account.ID, inv2.ID, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		_, err = s.AcceptInvitation(ctx, InvitationAccept{Token: tok2.Reveal(), Name: "N"})
		wantCode(t, err, codes.InvitationInvalid)
		evs, _, _ := s.ListAuditEvents(ctx, f.account.ID, Page{Limit: 1})
		if len(evs) != 1 || evs[0].Type != "invitation_deleted.v0" || evs[0].ObjectID != inv2.ID || evs[0].ActorID != f.admin.ID {
			t.Fatalf("last audit event = %+v", evs)
		}
	})
}

func TestInvitationAccept(t *testing.T) {
	eachDialectClock(t, func(t *testing.T, s *Store, c *clock) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		inv, tok, err := s.CreateInvitation(ctx, f.actor, f.account.ID, InvitationCreate{Email: "ann@example.com",
			Developer: DeveloperRW, Team: TeamRO, Admin: true})
		if err != nil {
			t.Fatal(err)
		}
		kid, secret, _ := authn.ParseToken(tok.Reveal())
		before := rev(t, s)
		for _, bad := range []string{"", "nonsense", kid + "_" + strings.Repeat("A", len(secret)),
			ids.New("x")[2:] + "_" + secret} {
			_, err := s.AcceptInvitation(ctx, InvitationAccept{Token: bad, Name: "Ann"})
			wantCode(t, err, codes.InvitationInvalid)
		}
		_, err = s.AcceptInvitation(ctx, InvitationAccept{Token: tok.Reveal()})
		wantCode(t, err, codes.APIInvalidParam) // a new user needs a name
		if r := rev(t, s); r != before {
			t.Fatalf("refused acceptances moved the revision to %d", r)
		}

		acc, err := s.AcceptInvitation(ctx, InvitationAccept{Token: tok.Reveal(), Name: "Ann"})
		if err != nil {
			t.Fatal(err)
		}
		u := acc.Member.User
		if !acc.UserCreated || u.Email != "ann@example.com" || u.Name != "Ann" || !strings.HasPrefix(u.ID, "usr_") ||
			acc.Member.Roles != (Membership{AccountID: f.account.ID, UserID: u.ID, Developer: DeveloperRW, Team: TeamRO,
				Admin: true, CreatedAt: acc.Member.Roles.CreatedAt}) || acc.Account.ID != f.account.ID {
			t.Fatalf("acceptance = %+v", acc)
		}
		// The key works as the new user's.
		kid2, secret2, err := authn.ParseToken(acc.Token.Reveal())
		if err != nil || "ak_"+kid2 != acc.APIKey.ID {
			t.Fatalf("key token does not name %s: %v", acc.APIKey.ID, err)
		}
		auth, err := s.LookupAPIKey(ctx, acc.APIKey.ID)
		if err != nil || !authn.SecretMatches(secret2, auth.SecretHash) || auth.OwnerID != u.ID || !auth.Member || !auth.Roles.Admin {
			t.Fatalf("LookupAPIKey = %+v, %v", auth, err)
		}
		// One unit of work, attributed to the new user with the invitation.
		if r := rev(t, s); r != before+1 {
			t.Fatalf("acceptance took revisions %d..%d", before, r)
		}
		evs, _, _ := s.ListAuditEvents(ctx, f.account.ID, Page{})
		seen := map[string]bool{}
		for _, e := range evs {
			if e.Revision == before+1 {
				if e.ActorID != u.ID || e.ActorCredentialID != inv.ID {
					t.Errorf("event %s by %s/%s, want %s/%s", e.Type, e.ActorID, e.ActorCredentialID, u.ID, inv.ID)
				}
				seen[e.Type] = true
			}
		}
		for _, w := range []string{"user_created.v0", "membership_created.v0", "invitation_accepted.v0", "api_key_created.v0"} {
			if !seen[w] {
				t.Errorf("missing audit event %s: %v", w, seen)
			}
		}
		if creator, err := s.APIKeyCreator(ctx, f.account.ID, acc.APIKey.ID); err != nil || creator != u.ID {
			t.Fatalf("the accepted key's creator = %q, %v; want the user", creator, err)
		}
		// A token works once.
		_, err = s.AcceptInvitation(ctx, InvitationAccept{Token: tok.Reveal(), Name: "Ann"})
		wantCode(t, err, codes.InvitationInvalid)

		// An existing user joins another account only by proving who they are.
		g := newFixture(t, s)
		_, tok3, err := s.CreateInvitation(ctx, g.actor, g.account.ID, InvitationCreate{Email: "ANN@example.com", Developer: DeveloperRO, Team: TeamRO})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AcceptInvitation(ctx, InvitationAccept{Token: tok3.Reveal(), Name: "Mallory"}); !errors.Is(err, ErrExistingUser) {
			t.Fatalf("existing user without proof: %v", err)
		}
		_, err = s.AcceptInvitation(ctx, InvitationAccept{Token: tok3.Reveal(), ExistingUserID: f.admin.ID})
		wantCode(t, err, codes.InvitationInvalid)
		acc3, err := s.AcceptInvitation(ctx, InvitationAccept{Token: tok3.Reveal(), ExistingUserID: u.ID, Name: "ignored"})
		if err != nil {
			t.Fatal(err)
		}
		if acc3.UserCreated || acc3.Member.User.ID != u.ID || acc3.Member.User.Name != "Ann" || acc3.Member.Roles.Admin ||
			acc3.APIKey.AccountID != g.account.ID {
			t.Fatalf("second acceptance = %+v", acc3)
		}
		accounts, _, err := s.ListAccountsOf(ctx, u.ID, Page{})
		if err != nil || len(accounts) != 2 {
			t.Fatalf("the user is in %d accounts, want 2: %v", len(accounts), err)
		}

		// A proven user with no account of that address is refused too.
		_, tok4, err := s.CreateInvitation(ctx, g.actor, g.account.ID, InvitationCreate{Email: "fresh@example.com", Developer: DeveloperRO, Team: TeamRO})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.AcceptInvitation(ctx, InvitationAccept{Token: tok4.Reveal(), ExistingUserID: u.ID})
		wantCode(t, err, codes.InvitationInvalid)

		// Expired.
		c.add(InvitationTTL)
		_, err = s.AcceptInvitation(ctx, InvitationAccept{Token: tok4.Reveal(), Name: "Fresh"})
		wantCode(t, err, codes.InvitationExpired)
	})
}

// A deactivated user cannot join another account through an invitation.
func TestInvitationAcceptDeactivatedUser(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		g := newFixture(t, s)
		if err := s.SetUserActive(ctx, SystemActor, g.admin.ID, false); err != nil {
			t.Fatal(err)
		}
		_, tok, err := s.CreateInvitation(ctx, f.actor, f.account.ID, InvitationCreate{Email: g.admin.Email, Developer: DeveloperRO, Team: TeamRO})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.AcceptInvitation(ctx, InvitationAccept{Token: tok.Reveal(), ExistingUserID: g.admin.ID})
		wantCode(t, err, codes.APIPrincipalInactive)
	})
}
