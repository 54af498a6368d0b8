package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
)

// TestPasswords: a user's password hash is stored, found by address in
// any case with the TOTP state, replaced, and refused for a bot user, who
// is never found by LookupPasswordUser.
func TestPasswords(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		pu, err := s.LookupPasswordUser(ctx, f.admin.Email)
		if err != nil || pu.UserID != f.admin.ID || pu.Hash != "" || pu.TOTP || !pu.Active {
			t.Fatalf("before a password: %+v, %v", pu, err)
		}
		if err := s.SetPassword(ctx, f.actor, f.admin.ID, "$argon2id$one", ""); err != nil {
			t.Fatal(err)
		}
		if err := s.SetPassword(ctx, f.actor, f.admin.ID, "$argon2id$two", ""); err != nil {
			t.Fatal(err)
		}
		if pu, err = s.LookupPasswordUser(ctx, "  "+strings.ToUpper(f.admin.Email)); err != nil || pu.Hash != "$argon2id$two" {
			t.Fatalf("after two: %+v, %v", pu, err)
		}
		if ev := lastEvent(t, s, f.account.ID); ev.Type != "user_password_set.v0" || ev.ObjectID != f.admin.ID {
			t.Fatalf("audited as %+v", ev)
		}
		if _, err := s.LookupPasswordUser(ctx, "nobody@example.com"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown address: %v", err)
		}
		if err := s.RehashPassword(ctx, f.admin.ID, "$argon2id$one", "$argon2id$three"); err != nil {
			t.Fatal(err)
		}
		if h, _ := s.PasswordHash(ctx, f.admin.ID); h != "$argon2id$two" {
			t.Fatalf("a rehash of an outdated hash replaced the current one: %q", h)
		}
		bot, err := s.CreateBotUser(ctx, f.actor, f.account.ID, BotUserCreate{Name: "ci", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetPassword(ctx, f.actor, bot.ID, "$argon2id$bot", ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a bot user's password: %v", err)
		}
		if _, err := s.CreateAccountFor(ctx, f.actor, bot.ID, "bots own"); !hasCode(err, codes.BotUserAccount) {
			t.Fatalf("a bot user created an account: %v", err)
		}
	})
}

func lastEvent(t *testing.T, s *Store, accountID string) AuditEvent {
	t.Helper()
	evs, _, err := s.ListAuditEvents(testCtx(t), accountID, Page{Limit: 1})
	if err != nil || len(evs) != 1 {
		t.Fatalf("audit events of %q: %v, %v", accountID, evs, err)
	}
	return evs[0]
}

// TestPasswordReset: a reset link works once, within an hour, replaces
// earlier links, ends the user's sessions, and is refused to an
// administrator who does not administer all of the user's accounts.
func TestPasswordReset(t *testing.T) {
	eachDialectClock(t, func(t *testing.T, s *Store, c *clock) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		u, err := s.CreateUser(ctx, SystemActor, "member@example.com", "Member")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutMembership(ctx, SystemActor, Membership{AccountID: f.account.ID, UserID: u.ID, Developer: DeveloperRO, Team: TeamRO}); err != nil {
			t.Fatal(err)
		}
		sess, _, err := s.CreateDashboardSession(ctx, SystemActor, DashboardSessionCreate{AccountID: f.account.ID, UserID: u.ID,
			Method: SignInPassword, ClientIP: "127.0.0.1", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		_, first, err := s.CreatePasswordReset(ctx, f.actor, f.account.ID, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		pr, tok, err := s.CreatePasswordReset(ctx, f.actor, f.account.ID, u.ID)
		if err != nil || pr.Email != "member@example.com" || !pr.ExpiresAt.Equal(c.Now().Add(PasswordResetTTL).Truncate(time.Microsecond)) {
			t.Fatalf("reset = %+v, %v", pr, err)
		}
		if _, err := s.UsePasswordReset(ctx, first.Reveal(), "$argon2id$x"); !hasCode(err, codes.ResetInvalid) {
			t.Fatalf("a replaced link: %v", err)
		}
		kid, _, _ := strings.Cut(tok.Reveal(), "_")
		if _, err := s.LookupPasswordReset(ctx, kid+"_wrongwrongwrongwrongwrongwrongwr"); !hasCode(err, codes.ResetInvalid) {
			t.Fatalf("a wrong secret: %v", err)
		}
		if _, err := s.UsePasswordReset(ctx, tok.Reveal(), "$argon2id$new"); err != nil {
			t.Fatal(err)
		}
		if h, _ := s.PasswordHash(ctx, u.ID); h != "$argon2id$new" {
			t.Fatalf("password after the reset: %q", h)
		}
		if _, err := s.LookupDashboardSession(ctx, sess.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a session outlived the reset: %v", err)
		}
		if _, err := s.UsePasswordReset(ctx, tok.Reveal(), "$argon2id$again"); !hasCode(err, codes.ResetInvalid) {
			t.Fatalf("a link used twice: %v", err)
		}

		// Expiry: an hour and a microsecond later, refused.
		_, tok, err = s.CreatePasswordReset(ctx, f.actor, f.account.ID, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		c.add(PasswordResetTTL)
		if _, err := s.UsePasswordReset(ctx, tok.Reveal(), "$argon2id$late"); !hasCode(err, codes.ResetInvalid) {
			t.Fatalf("an expired link: %v", err)
		}

		// The member joins an account f.admin does not administer.
		other, err := s.CreateAccountFor(ctx, Actor{PrincipalID: u.ID}, u.ID, "member's own")
		if err != nil {
			t.Fatal(err)
		}
		before := rev(t, s)
		if _, _, err := s.CreatePasswordReset(ctx, f.actor, f.account.ID, u.ID); !hasCode(err, codes.ResetForbidden) {
			t.Fatalf("a reset across accounts: %v", err)
		}
		if _, _, err := s.CreatePasswordReset(ctx, f.actor, other.ID, f.admin.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a reset of a non-member: %v", err)
		}
		if rev(t, s) != before {
			t.Fatal("refused resets changed the store")
		}
	})
}

// TestTOTPStore: enrolment is confirmed by one step; a step is accepted
// once, and never one at or before the last; a confirmed authenticator is
// removed before another is enrolled.
func TestTOTPStore(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		uid := f.admin.ID
		if err := s.StartTOTP(ctx, f.actor, uid, "SECRETONE"); err != nil {
			t.Fatal(err)
		}
		if err := s.UseTOTPStep(ctx, f.actor, uid, 100, false); !hasCode(err, codes.TOTPInvalid) {
			t.Fatalf("a sign-in step of an unconfirmed authenticator: %v", err)
		}
		if err := s.StartTOTP(ctx, f.actor, uid, "SECRETTWO"); err != nil {
			t.Fatal(err) // an unconfirmed enrolment starts again
		}
		if err := s.UseTOTPStep(ctx, f.actor, uid, 100, true); err != nil {
			t.Fatal(err)
		}
		o, err := s.GetTOTP(ctx, uid)
		if err != nil || !o.Confirmed || o.LastStep != 100 || o.Secret != "SECRETTWO" {
			t.Fatalf("after confirming: %+v, %v", o, err)
		}
		if pu, _ := s.LookupPasswordUser(ctx, f.admin.Email); !pu.TOTP {
			t.Fatal("LookupPasswordUser does not see the authenticator")
		}
		for _, step := range []int64{99, 100} {
			if err := s.UseTOTPStep(ctx, f.actor, uid, step, false); !hasCode(err, codes.TOTPInvalid) {
				t.Fatalf("step %d after 100: %v", step, err)
			}
		}
		if err := s.UseTOTPStep(ctx, f.actor, uid, 101, false); err != nil {
			t.Fatal(err)
		}
		if err := s.StartTOTP(ctx, f.actor, uid, "SECRETTHREE"); !hasCode(err, codes.TOTPState) {
			t.Fatalf("enrolling over a confirmed authenticator: %v", err)
		}
		if err := s.DeleteTOTP(ctx, f.actor, uid); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTOTP(ctx, f.actor, uid); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleting twice: %v", err)
		}
	})
}

// TestSignInChallenges: a pending sign-in is found by its token until it
// expires or takes MaxChallengeAttempts wrong codes.
func TestSignInChallenges(t *testing.T) {
	eachDialectClock(t, func(t *testing.T, s *Store, c *clock) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		ch, tok, err := s.CreateSignInChallenge(ctx, f.admin.ID, "127.0.0.1", 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.LookupSignInChallenge(ctx, tok.Reveal()); err != nil || got.ID != ch.ID || got.UserID != f.admin.ID {
			t.Fatalf("lookup = %+v, %v", got, err)
		}
		kid, _, _ := strings.Cut(tok.Reveal(), "_")
		if _, err := s.LookupSignInChallenge(ctx, kid+"_wrongwrongwrongwrongwrongwrongwr"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a wrong secret: %v", err)
		}
		for i := 0; i < MaxChallengeAttempts; i++ {
			if err := s.FailSignInChallenge(ctx, ch.ID); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.LookupSignInChallenge(ctx, tok.Reveal()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after %d wrong codes: %v", MaxChallengeAttempts, err)
		}
		_, tok, err = s.CreateSignInChallenge(ctx, f.admin.ID, "127.0.0.1", 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		c.add(5 * time.Minute)
		if _, err := s.LookupSignInChallenge(ctx, tok.Reveal()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("an expired challenge: %v", err)
		}
	})
}

// TestAccountsOfAUser: a user creates a second account and administers it;
// sign-up creates a user, a password and an account in one unit, and
// refuses a taken address; an invitation accepted with a password sets it
// for the new user; sessions rotate.
func TestAccountsOfAUser(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		a, err := s.CreateAccountFor(ctx, f.actor, f.admin.ID, "second")
		if err != nil {
			t.Fatal(err)
		}
		if m, err := s.GetMembership(ctx, a.ID, f.admin.ID); err != nil || !m.Admin || m.Team != TeamManager {
			t.Fatalf("roles in the created account: %+v, %v", m, err)
		}
		if ev := lastEvent(t, s, a.ID); ev.ActorID != f.admin.ID {
			t.Fatalf("audited as %+v", ev)
		}
		accts, err := s.FirstAccounts(ctx, f.admin.ID, 10)
		if err != nil || len(accts) != 2 || accts[0].Account.ID != f.account.ID {
			t.Fatalf("FirstAccounts = %+v, %v", accts, err)
		}

		u, acct, err := s.SignUp(ctx, SignUp{Email: "Founder@Example.com", Name: "Fran", AccountName: "startup", PasswordHash: "$argon2id$f"})
		if err != nil || u.Email != "founder@example.com" {
			t.Fatalf("sign-up: %+v, %v", u, err)
		}
		if h, _ := s.PasswordHash(ctx, u.ID); h != "$argon2id$f" {
			t.Fatalf("sign-up password %q", h)
		}
		if m, err := s.GetMembership(ctx, acct.ID, u.ID); err != nil || !m.Admin {
			t.Fatalf("founder roles %+v, %v", m, err)
		}
		r := rev(t, s)
		if _, _, err := s.SignUp(ctx, SignUp{Email: "founder@example.com", Name: "Again", AccountName: "again", PasswordHash: "$argon2id$g"}); !isConflict(err, codes.SignUpTaken) {
			t.Fatalf("a taken address: %v", err)
		}
		if rev(t, s) != r {
			t.Fatal("a refused sign-up changed the store")
		}

		_, tok, err := s.CreateInvitation(ctx, f.actor, f.account.ID, InvitationCreate{Email: "joiner@example.com", Developer: DeveloperRO, Team: TeamRO})
		if err != nil {
			t.Fatal(err)
		}
		pv, err := s.PreviewInvitation(ctx, tok.Reveal())
		if err != nil || pv.ExistingUser || pv.AccountName != "acme" || pv.Invitation.Email != "joiner@example.com" {
			t.Fatalf("preview = %+v, %v", pv, err)
		}
		acc, err := s.AcceptInvitation(ctx, InvitationAccept{Token: tok.Reveal(), Name: "Jo", PasswordHash: "$argon2id$j"})
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := s.PasswordHash(ctx, acc.Member.User.ID); h != "$argon2id$j" {
			t.Fatalf("the invitee's password %q", h)
		}

		// Rotation: a new session ends the one it replaces, audited.
		open := func(replaces string) *DashboardSession {
			ds, _, err := s.CreateDashboardSession(ctx, SystemActor, DashboardSessionCreate{AccountID: f.account.ID, UserID: f.admin.ID,
				Method: SignInPassword, ClientIP: "127.0.0.1", TTL: time.Hour, Replaces: replaces})
			if err != nil {
				t.Fatal(err)
			}
			return ds
		}
		old := open("")
		cur := open(old.ID)
		if _, err := s.LookupDashboardSession(ctx, old.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the replaced session lives: %v", err)
		}
		if _, err := s.LookupDashboardSession(ctx, cur.ID); err != nil {
			t.Fatal(err)
		}
		open("dsn_2abcdefghijklmnopqrstuvwxyz") // a session already gone is no error
	})
}
