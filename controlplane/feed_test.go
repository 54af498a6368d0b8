package controlplane

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/snapshot"
)

func TestSnapshotFeedWaitsForNewRevision(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		s0, err := e.srv.Snapshot(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if s0.Revision() != e.revision() || s0.Revision() == 0 {
			t.Fatalf("Snapshot(0) at revision %d, store at %d", s0.Revision(), e.revision())
		}
		// Nothing newer: the call waits until its context ends.
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err = e.srv.Snapshot(short, s0.Revision())
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Snapshot with nothing new = %v, want DeadlineExceeded", err)
		}
		// Several waiters all wake on one commit.
		type result struct {
			snap *snapshot.Snapshot
			err  error
		}
		results := make(chan result, 5)
		var wg sync.WaitGroup
		for i := 0; i < 5; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := e.srv.Snapshot(ctx, s0.Revision())
				results <- result{s, err}
			}()
		}
		cred := e.must(201, e.call("POST", "/credentials", e.admin, map[string]any{"description": "new"}))
		wg.Wait()
		close(results)
		for r := range results {
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.snap.Revision() <= s0.Revision() {
				t.Fatalf("woke with revision %d <= %d", r.snap.Revision(), s0.Revision())
			}
			if _, err := authn.VerifyAuthtoken(r.snap, str(cred, "token")); err != nil {
				t.Fatalf("new authtoken not in the snapshot: %v", err)
			}
		}
	})
}

// TestSnapshotFeedSeesOtherProcesses checks that a control plane notices
// writes made by another process on the same database, by polling.
func TestSnapshotFeedSeesOtherProcesses(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			a := newEnv(t, dsn, ServerConfig{})
			otherStore := openStore(t, dsn)
			b := NewServer(otherStore, ServerConfig{PollInterval: 20 * time.Millisecond})
			ctx := testCtx(t)
			s0, err := b.Snapshot(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan *snapshot.Snapshot, 1)
			errc := make(chan error, 1)
			go func() {
				s, err := b.Snapshot(ctx, s0.Revision())
				if err != nil {
					errc <- err
					return
				}
				done <- s
			}()
			bot := a.must(201, a.call("POST", "/bot_users", a.admin, map[string]any{"name": "remote"}))
			select {
			case s := <-done:
				if _, ok := s.Principal(str(bot, "id")); !ok {
					t.Fatal("the other process's bot user is not in the snapshot")
				}
			case err := <-errc:
				t.Fatal(err)
			case <-time.After(10 * time.Second):
				t.Fatal("the feed did not see another process's write within 10s")
			}
		})
	}
}

func TestBootstrapReturnsTokensOnce(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		if e.admin == "" || e.dev.Authtoken == "" {
			t.Fatal("the first Bootstrap returned no tokens")
		}
		again, created, err := e.srv.Bootstrap(testCtx(t))
		if err != nil || created {
			t.Fatalf("second Bootstrap: created=%v err=%v", created, err)
		}
		if again.AccountID != e.dev.AccountID || again.UserID != e.dev.UserID || again.APIKeyID != e.dev.APIKeyID ||
			again.AuthtokenID != e.dev.AuthtokenID || again.APIKey != "" || again.Authtoken != "" {
			t.Fatalf("second Bootstrap = %+v", again)
		}
		acct, err := e.store.GetAccount(testCtx(t), e.dev.AccountID)
		if err != nil || acct.Name != DevAccountName {
			t.Fatalf("account = %+v, %v", acct, err)
		}
		u, err := e.store.GetUser(testCtx(t), e.dev.UserID)
		if err != nil || u.Email != DevAdminEmail {
			t.Fatalf("user = %+v, %v", u, err)
		}
		snap, err := e.srv.Snapshot(testCtx(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		id, err := authn.VerifyAuthtoken(snap, e.dev.Authtoken.Reveal())
		if err != nil || id.Principal.ID != e.dev.UserID {
			t.Fatalf("bootstrap authtoken: %+v, %v", id, err)
		}
		me := e.must(200, e.call("GET", "/api_keys/"+e.dev.APIKeyID, e.admin, nil))
		if str(me, "owner_id") != e.dev.UserID {
			t.Fatalf("bootstrap key = %v", me)
		}
		// The admin's membership carries every role.
		m, err := e.store.GetMembership(testCtx(t), e.dev.AccountID, e.dev.UserID)
		if err != nil || !m.Admin || !m.Billing || m.Developer != store.DeveloperRW || m.Team != store.TeamManager {
			t.Fatalf("membership = %+v, %v", m, err)
		}
	})
}
