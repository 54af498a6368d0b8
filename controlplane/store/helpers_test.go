package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/ids"
)

// eachDialect runs fn as a subtest against a fresh store of every dialect.
func eachDialect(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			fn(t, openTest(t, storetest.DSN(t, d)))
		})
	}
}

func openTest(t testing.TB, dsn string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func rev(t testing.TB, s *Store) uint64 {
	t.Helper()
	r, err := s.Revision(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fixture is an account with an admin user, for tests.
type fixture struct {
	account *Account
	admin   *User
	actor   Actor
}

func newFixture(t testing.TB, s *Store) fixture {
	t.Helper()
	ctx := testCtx(t)
	a, err := s.CreateAccount(ctx, SystemActor, "acme")
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateUser(ctx, SystemActor, ids.New("x")+"@example.com", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutMembership(ctx, SystemActor, Membership{AccountID: a.ID, UserID: u.ID,
		Developer: DeveloperRW, Team: TeamManager, Admin: true}); err != nil {
		t.Fatal(err)
	}
	return fixture{account: a, admin: u, actor: Actor{AccountID: a.ID, PrincipalID: u.ID}}
}

func wantCode(t testing.TB, err error, code codes.Code) {
	t.Helper()
	var ce *codes.Error
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

// auditOf returns the audit events of the account of one type for one
// object, oldest first.
func auditOf(t testing.TB, s *Store, accountID, typ, objectID string) []AuditEvent {
	t.Helper()
	evs, _, err := s.ListAuditEvents(testCtx(t), accountID, Page{})
	if err != nil {
		t.Fatal(err)
	}
	var out []AuditEvent
	for _, ev := range evs {
		if ev.Type == typ && ev.ObjectID == objectID {
			out = append(out, ev)
		}
	}
	slices.Reverse(out)
	return out
}

// wantConflictCode checks that err is a *ConflictError with code (and so
// an ErrConflict).
func wantConflictCode(t testing.TB, err error, code codes.Code) {
	t.Helper()
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Code != code || !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want conflict %s", err, code)
	}
}
