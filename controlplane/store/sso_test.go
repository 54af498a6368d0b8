package store

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane/internal/storetest"
)

// TestConsumeAssertion: an assertion ID is accepted once per identity
// provider, by whichever control plane sees it first (two Stores on one
// database), and its record is purged after it expires.
func TestConsumeAssertion(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			now := time.Now()
			a := openTest(t, dsn)
			b, err := Open(testCtx(t), dsn, Options{Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			ctx := testCtx(t)
			exp := now.Add(5 * time.Minute)
			if err := a.ConsumeAssertion(ctx, "idp_1", "id-abc", exp); err != nil {
				t.Fatal(err)
			}
			if err := b.ConsumeAssertion(ctx, "idp_1", "id-abc", exp); !errors.Is(err, ErrConflict) {
				t.Fatalf("a replay through another control plane: %v", err)
			}
			if err := b.ConsumeAssertion(ctx, "idp_2", "id-abc", exp); err != nil {
				t.Fatalf("the same ID from another IdP: %v", err)
			}
			now = now.Add(10 * time.Minute) // past the expiry: purged on the next call
			if err := b.ConsumeAssertion(ctx, "idp_1", "id-abc", now.Add(time.Minute)); err != nil {
				t.Fatalf("after expiry: %v", err)
			}
		})
	}
}

// TestProvisionSSOUser: JIT creates the user and membership with the JIT
// roles, once; invite-only refuses a non-member and changes nothing, and
// admits a member.
func TestProvisionSSOUser(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		f := newFixture(t, s)
		ctx := testCtx(t)
		r0 := rev(t, s)
		if _, err := s.ProvisionSSOUser(ctx, f.actor, f.account.ID, "New@Example.com", "New", ProvisionInviteOnly); !errors.Is(err, ErrNotInvited) {
			t.Fatalf("invite-only: %v", err)
		}
		if rev(t, s) != r0 {
			t.Fatal("a refused provisioning changed the store")
		}
		in, err := s.ProvisionSSOUser(ctx, f.actor, f.account.ID, "New@Example.com", "New", ProvisionJIT)
		if err != nil || !in.Created || !in.Joined {
			t.Fatalf("JIT: %+v %v", in, err)
		}
		m, err := s.GetMembership(ctx, f.account.ID, in.UserID)
		if err != nil || *m != (Membership{AccountID: f.account.ID, UserID: in.UserID, Developer: DeveloperRO, Team: TeamRO, CreatedAt: m.CreatedAt}) {
			t.Fatalf("membership %+v %v", m, err)
		}
		again, err := s.ProvisionSSOUser(ctx, f.actor, f.account.ID, "new@example.com", "", ProvisionInviteOnly)
		if err != nil || again.UserID != in.UserID || again.Created || again.Joined {
			t.Fatalf("second sign-in: %+v %v", again, err)
		}
	})
}
