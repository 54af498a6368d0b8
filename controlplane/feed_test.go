package controlplane_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/snapshot"
)

func TestSnapshotFeedWaitsForNewRevision(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		ctx := cptest.Ctx(t)
		s0, err := e.Core.Snapshot(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if s0.Revision() != e.Revision() || s0.Revision() == 0 {
			t.Fatalf("Snapshot(0) at revision %d, store at %d", s0.Revision(), e.Revision())
		}
		// Nothing newer: the call waits until its context ends.
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err = e.Core.Snapshot(short, s0.Revision())
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
				s, err := e.Core.Snapshot(ctx, s0.Revision())
				results <- result{s, err}
			}()
		}
		cred := e.Must(201, e.Call("POST", "/credentials", e.Admin, map[string]any{"description": "new"}))
		wg.Wait()
		close(results)
		for r := range results {
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.snap.Revision() <= s0.Revision() {
				t.Fatalf("woke with revision %d <= %d", r.snap.Revision(), s0.Revision())
			}
			if _, err := authn.VerifyAuthtoken(r.snap, cptest.Str(cred, "token")); err != nil {
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
			a := cptest.NewEnv(t, dsn, cptest.Config{})
			otherStore := cptest.OpenStore(t, dsn)
			b := controlplane.New(controlplane.Config{PollInterval: 20 * time.Millisecond}, otherStore)
			ctx := cptest.Ctx(t)
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
			bot := a.Must(201, a.Call("POST", "/bot_users", a.Admin, map[string]any{"name": "remote"}))
			select {
			case s := <-done:
				if _, ok := s.Principal(cptest.Str(bot, "id")); !ok {
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
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		if e.Admin == "" || e.Dev.Authtoken == "" {
			t.Fatal("the first Bootstrap returned no tokens")
		}
		again, created, err := e.Core.Bootstrap(cptest.Ctx(t))
		if err != nil || created {
			t.Fatalf("second Bootstrap: created=%v err=%v", created, err)
		}
		if again.AccountID != e.Dev.AccountID || again.UserID != e.Dev.UserID || again.APIKeyID != e.Dev.APIKeyID ||
			again.AuthtokenID != e.Dev.AuthtokenID || again.APIKey != "" || again.Authtoken != "" {
			t.Fatalf("second Bootstrap = %+v", again)
		}
		acct, err := e.Store.GetAccount(cptest.Ctx(t), e.Dev.AccountID)
		if err != nil || acct.Name != controlplane.DevAccountName {
			t.Fatalf("account = %+v, %v", acct, err)
		}
		u, err := e.Store.GetUser(cptest.Ctx(t), e.Dev.UserID)
		if err != nil || u.Email != controlplane.DevAdminEmail {
			t.Fatalf("user = %+v, %v", u, err)
		}
		snap, err := e.Core.Snapshot(cptest.Ctx(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		id, err := authn.VerifyAuthtoken(snap, e.Dev.Authtoken.Reveal())
		if err != nil || id.Principal.ID != e.Dev.UserID {
			t.Fatalf("bootstrap authtoken: %+v, %v", id, err)
		}
		me := e.Must(200, e.Call("GET", "/api_keys/"+e.Dev.APIKeyID, e.Admin, nil))
		if cptest.Str(me, "owner_id") != e.Dev.UserID {
			t.Fatalf("bootstrap key = %v", me)
		}
		// The admin's membership carries every role.
		m, err := e.Store.GetMembership(cptest.Ctx(t), e.Dev.AccountID, e.Dev.UserID)
		if err != nil || !m.Admin || !m.Billing || m.Developer != store.DeveloperRW || m.Team != store.TeamManager {
			t.Fatalf("membership = %+v, %v", m, err)
		}
	})
}
