package store

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/snapshot"
)

// holder returns a holder of app.example.com in region us.
func holder(id, account, edge, instance string, pooling bool) snapshot.RouteHolder {
	return snapshot.RouteHolder{ID: id, Region: "us", Proto: "https", Key: "app.example.com", AccountID: account,
		EdgeID: edge, SessionID: "ts_" + id, InstanceID: instance, Pooling: pooling}
}

// liveNow counts edges that reported in the last minute as live.
func liveNow() EdgeLiveness { return EdgeLiveness{Since: time.Now().Add(-time.Minute)} }

func claim(t *testing.T, s *Store, h snapshot.RouteHolder, takeover bool) snapshot.RouteClaimAnswer {
	t.Helper()
	a, err := s.ClaimRoute(testCtx(t), snapshot.RouteClaim{Holder: h, Takeover: takeover}, liveNow())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// holderIDs returns the IDs of the holders of app.example.com in us in
// the store's snapshot.
func holderIDs(t *testing.T, s *Store) []string {
	t.Helper()
	snap, err := s.BuildSnapshot(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range snap.RouteHolders("us", "app.example.com") {
		out = append(out, h.ID)
	}
	return out
}

// TestClaimRouteConcurrentAccounts: two control-plane processes (two
// stores on one database) claim one name for two accounts at once, on two
// edges; exactly one wins every time, and the loser is told who holds it.
func TestClaimRouteConcurrentAccounts(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			a, b := openTest(t, dsn), openTest(t, dsn)
			for round := range 8 {
				key := fmt.Sprintf("n%d.example.com", round)
				var wg sync.WaitGroup
				start := make(chan struct{})
				answers := make([]snapshot.RouteClaimAnswer, 2)
				errs := make([]error, 2)
				for i, st := range []*Store{a, b} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						h := snapshot.RouteHolder{ID: fmt.Sprintf("ep_%d_%d", round, i), Region: "us", Proto: "https", Key: key,
							AccountID: fmt.Sprintf("acct_%d", i), EdgeID: fmt.Sprintf("ed_%d", i), SessionID: "ts_x"}
						<-start
						answers[i], errs[i] = st.ClaimRoute(testCtx(t), snapshot.RouteClaim{Holder: h}, liveNow())
					}()
				}
				close(start)
				wg.Wait()
				if errs[0] != nil || errs[1] != nil {
					t.Fatalf("round %d: %v / %v", round, errs[0], errs[1])
				}
				if answers[0].Granted == answers[1].Granted {
					t.Fatalf("round %d: granted %v and %v; want exactly one", round, answers[0].Granted, answers[1].Granted)
				}
				loser := answers[0]
				if loser.Granted {
					loser = answers[1]
				}
				if loser.Conflict == nil || loser.Revision != 0 {
					t.Fatalf("round %d: the refusal %+v names no conflict", round, loser)
				}
				snap, err := b.BuildSnapshot(testCtx(t))
				if err != nil {
					t.Fatal(err)
				}
				if hs := snap.RouteHolders("us", key); len(hs) != 1 || hs[0].AccountID != loser.Conflict.AccountID {
					t.Fatalf("round %d: holders %+v, conflict %+v", round, hs, loser.Conflict)
				}
			}
		})
	}
}

// TestClaimRouteRule: HA legs join, a pool joins only when every member
// asked, a bind token takes the name over from the same account only, and
// a different account is refused even with pooling.
func TestClaimRouteRule(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		r0 := rev(t, s)
		first := claim(t, s, holder("ep_1", "acct_a", "ed_1", "inst_1", false), false)
		if !first.Granted || first.Revision != r0+1 {
			t.Fatalf("first claim = %+v (revision before %d)", first, r0)
		}
		// The agent's second leg, on another edge: joins.
		if a := claim(t, s, holder("ep_2", "acct_a", "ed_2", "inst_1", false), false); !a.Granted {
			t.Fatalf("HA leg refused: %+v", a)
		}
		// Another agent of the same account without pooling: refused.
		if a := claim(t, s, holder("ep_3", "acct_a", "ed_3", "inst_2", true), false); a.Granted || a.Conflict == nil {
			t.Fatalf("second agent without the holders' pooling = %+v", a)
		}
		// Another account, with a token-less bind and with pooling: refused.
		if a := claim(t, s, holder("ep_4", "acct_b", "ed_3", "", true), true); a.Granted || a.Conflict.AccountID != "acct_a" {
			t.Fatalf("other account = %+v", a)
		}
		// The same account with a bind token: takes the name over from
		// both legs.
		tk := claim(t, s, holder("ep_5", "acct_a", "ed_3", "inst_3", true), true)
		if !tk.Granted || len(tk.Displaced) != 2 {
			t.Fatalf("takeover = %+v", tk)
		}
		if got := holderIDs(t, s); len(got) != 1 || got[0] != "ep_5" {
			t.Fatalf("holders after the takeover: %v", got)
		}
		// A pool: a second agent that asks for pooling joins ep_5 (which
		// asked too); a third that does not is refused.
		if a := claim(t, s, holder("ep_6", "acct_a", "ed_1", "inst_4", true), false); !a.Granted {
			t.Fatalf("pool member refused: %+v", a)
		}
		if a := claim(t, s, holder("ep_7", "acct_a", "ed_2", "inst_5", false), false); a.Granted {
			t.Fatalf("a bind without pooling joined the pool: %+v", a)
		}
		if a := claim(t, s, holder("ep_8", "acct_b", "ed_2", "inst_6", true), false); a.Granted {
			t.Fatalf("another account joined the pool: %+v", a)
		}
		// A retry of a recorded claim is granted again, at the current revision.
		cur := rev(t, s)
		if a := claim(t, s, holder("ep_6", "acct_a", "ed_1", "inst_4", true), false); !a.Granted || a.Revision != cur {
			t.Fatalf("retry = %+v, revision %d", a, cur)
		}
		if got := holderIDs(t, s); len(got) != 2 || got[0] != "ep_5" || got[1] != "ep_6" {
			t.Fatalf("pool holders: %v", got)
		}
		// Releasing needs the holder's edge.
		if r, err := s.ReleaseRoutes(testCtx(t), "ed_2", []string{"ep_5"}); err != nil || r != 0 {
			t.Fatalf("release by another edge: %d, %v", r, err)
		}
		if r, err := s.ReleaseRoutes(testCtx(t), "ed_3", []string{"ep_5"}); err != nil || r == 0 {
			t.Fatalf("release: %d, %v", r, err)
		}
		if got := holderIDs(t, s); len(got) != 1 || got[0] != "ep_6" {
			t.Fatalf("holders after release: %v", got)
		}
	})
}

// TestClaimRouteGoneEdge: a holder on an edge that stopped reporting does
// not block another account, and is deleted by the grant; the change log
// carries both changes to edges as one delta.
func TestClaimRouteGoneEdge(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		if err := s.PutEdgeReport(ctx, snapshot.EdgeReport{EdgeID: "ed_old", Region: "us", AgentAddr: "a:1"}); err != nil {
			t.Fatal(err)
		}
		if a := claim(t, s, holder("ep_old", "acct_a", "ed_old", "", false), false); !a.Granted {
			t.Fatal(a)
		}
		before := rev(t, s)
		// While ed_old is live, acct_b is refused.
		if a := claim(t, s, holder("ep_b", "acct_b", "ed_new", "", false), false); a.Granted {
			t.Fatalf("granted over a live holder: %+v", a)
		}
		// Later, ed_old's last report (and its holder) is older than the
		// liveness cutoff: it is gone.
		gone := EdgeLiveness{Since: time.Now().Add(time.Minute)}
		a, err := s.ClaimRoute(ctx, snapshot.RouteClaim{Holder: holder("ep_b", "acct_b", "ed_new", "", false)}, gone)
		if err != nil || !a.Granted {
			t.Fatalf("claim over a gone edge's holder = %+v, %v", a, err)
		}
		if got := holderIDs(t, s); len(got) != 1 || got[0] != "ep_b" {
			t.Fatalf("holders: %v", got)
		}
		d, err := s.Changes(ctx, before)
		if err != nil {
			t.Fatal(err)
		}
		rh := d.RouteHolders
		if rh == nil || len(rh.Upsert) != 1 || rh.Upsert[0].ID != "ep_b" || len(rh.Delete) != 1 || rh.Delete[0] != "ep_old" {
			t.Fatalf("delta of the route table: %+v", rh)
		}
		// An edge that shuts down drops its holders.
		if err := s.DropEdgeRoutes(ctx, []string{"ed_new"}); err != nil {
			t.Fatal(err)
		}
		if got := holderIDs(t, s); len(got) != 0 {
			t.Fatalf("holders after the edge left: %v", got)
		}
	})
}

// TestSyncRoutes: an edge's sync replaces its holders; one that another
// edge won meanwhile comes back as a conflict.
func TestSyncRoutes(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		if a := claim(t, s, holder("ep_stale", "acct_a", "ed_1", "", false), false); !a.Granted {
			t.Fatal(a)
		}
		if a := claim(t, s, holder("ep_won", "acct_b", "ed_2", "", false), false); a.Granted {
			t.Fatal("two accounts hold one name")
		}
		// ed_1 restarts: its sync drops ep_stale; then ed_2's recorded
		// holder wins the name.
		ans, err := s.SyncRoutes(ctx, snapshot.RouteSync{EdgeID: "ed_1", Region: "us"}, liveNow())
		if err != nil || len(ans.Conflicts) != 0 {
			t.Fatalf("sync = %+v, %v", ans, err)
		}
		if a := claim(t, s, holder("ep_won", "acct_b", "ed_2", "", false), false); !a.Granted {
			t.Fatal(a)
		}
		// ed_1 bound the name while the control plane was unreachable, and
		// another name too: the first is a conflict, the second recorded.
		other := holder("ep_other", "acct_a", "ed_1", "", false)
		other.Key = "other.example.com"
		ans, err = s.SyncRoutes(ctx, snapshot.RouteSync{EdgeID: "ed_1", Region: "us",
			Holders: []snapshot.RouteHolder{holder("ep_late", "acct_a", "ed_1", "", false), other}}, liveNow())
		if err != nil || len(ans.Conflicts) != 1 || ans.Conflicts[0] != "ep_late" || ans.Revision != rev(t, s) {
			t.Fatalf("sync = %+v, %v", ans, err)
		}
		snap, err := s.BuildSnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if hs := snap.RouteHolders("us", "app.example.com"); len(hs) != 1 || hs[0].ID != "ep_won" {
			t.Fatalf("app holders: %+v", hs)
		}
		if hs := snap.RouteHolders("us", "other.example.com"); len(hs) != 1 || hs[0].ID != "ep_other" {
			t.Fatalf("other holders: %+v", hs)
		}
	})
}
