package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/snapshot"
)

// TestEdgeReports: a report replaces the edge's previous one; reads by
// another Store on the same database (another control-plane process) see
// it; silent edges drop out of reads by cutoff and are deleted with their
// commands.
func TestEdgeReports(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			a, b := openTest(t, dsn), openTest(t, dsn)
			ctx := testCtx(t)
			sess := snapshot.AgentSession{ID: "ts_1", AccountID: "ac_1",
				Endpoints: []snapshot.Endpoint{{ID: "ep_1", URL: "https://app.example.com"}}}
			if err := a.PutEdgeReport(ctx, snapshot.EdgeReport{EdgeID: "edge_a", Region: "us", AgentAddr: "a:443", PeerAddr: "a:7443",
				Sessions: []snapshot.AgentSession{sess}}); err != nil {
				t.Fatal(err)
			}
			if err := a.PutEdgeReport(ctx, snapshot.EdgeReport{EdgeID: "edge_b", Region: "eu", AgentAddr: "b:443"}); err != nil {
				t.Fatal(err)
			}
			got, err := b.EdgeStates(ctx, time.Now().Add(-time.Minute), true)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].Info.ID != "edge_b" || got[1].Info.ID != "edge_a" {
				t.Fatalf("edges read through the other store: %+v", got)
			}
			if got[1].Info.PeerAddr != "a:7443" || got[0].Info.PeerAddr != "" {
				t.Fatalf("edge-to-edge addresses: %q, %q; want a:7443 and none", got[1].Info.PeerAddr, got[0].Info.PeerAddr)
			}
			if s := got[1].Sessions; len(s) != 1 || s[0].ID != "ts_1" || len(s[0].Endpoints) != 1 || s[0].Endpoints[0].URL != "https://app.example.com" {
				t.Fatalf("edge_a's sessions: %+v", s)
			}
			if got[0].Sessions == nil || len(got[0].Sessions) != 0 || !got[1].PolledAt.IsZero() {
				t.Fatalf("edge_b: %+v; edge_a polled at %v", got[0], got[1].PolledAt)
			}
			// A new report replaces the list; a poll is recorded.
			if err := a.PutEdgeReport(ctx, snapshot.EdgeReport{EdgeID: "edge_a", Region: "us", AgentAddr: "a:443"}); err != nil {
				t.Fatal(err)
			}
			if ok, err := b.MarkEdgePolled(ctx, "edge_a"); err != nil || !ok {
				t.Fatalf("MarkEdgePolled(edge_a) = %v, %v", ok, err)
			}
			if ok, err := b.MarkEdgePolled(ctx, "edge_new"); err != nil || ok {
				t.Fatalf("MarkEdgePolled of an edge that never reported = %v, %v", ok, err)
			}
			got, err = a.EdgeStates(ctx, time.Now().Add(-time.Minute), true)
			if err != nil {
				t.Fatal(err)
			}
			if len(got[1].Sessions) != 0 || got[1].PolledAt.IsZero() {
				t.Fatalf("edge_a after an empty report and a poll: %+v", got[1])
			}
			// Every edge reported before a future cutoff: none is live, and
			// deleting the silent ones takes their commands along.
			if err := a.QueueEdgeCommand(ctx, "edge_a", snapshot.EdgeCommand{ID: "cmd_x", Verb: "stop", SessionID: "ts_1"}); err != nil {
				t.Fatal(err)
			}
			future := time.Now().Add(time.Minute)
			if got, err := b.EdgeStates(ctx, future, false); err != nil || len(got) != 0 {
				t.Fatalf("edges live after a future cutoff: %+v, %v", got, err)
			}
			gone, err := b.DeleteEdgesSilentSince(ctx, future)
			if err != nil || len(gone) != 2 {
				t.Fatalf("DeleteEdgesSilentSince = %v, %v", gone, err)
			}
			if _, _, err := a.EdgeCommandResult(ctx, "cmd_x"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("the command of a forgotten edge: %v", err)
			}
		})
	}
}

// TestEdgeCommandsDeliveredOnce: stores on one database (control-plane
// processes) claim an edge's commands concurrently; each command is
// claimed by exactly one, and the result written through one is read
// through another.
func TestEdgeCommandsDeliveredOnce(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			stores := []*Store{openTest(t, dsn), openTest(t, dsn), openTest(t, dsn)}
			ctx := testCtx(t)
			const n = 40
			for i := range n {
				cmd := snapshot.EdgeCommand{ID: "cmd_" + string(rune('A'+i)), Verb: snapshot.EdgeCommandStop, SessionID: "ts_1"}
				if err := stores[i%len(stores)].QueueEdgeCommand(ctx, "edge_a", cmd); err != nil {
					t.Fatal(err)
				}
			}
			if err := stores[0].QueueEdgeCommand(ctx, "edge_b", snapshot.EdgeCommand{ID: "cmd_other", Verb: "stop", SessionID: "ts_2"}); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			seen := map[string]int{}
			var wg sync.WaitGroup
			for w := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 5 {
						cmds, err := stores[w%len(stores)].ClaimEdgeCommands(ctx, "edge_a")
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						for _, c := range cmds {
							seen[c.ID]++
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(seen) != n {
				t.Fatalf("%d of %d commands claimed", len(seen), n)
			}
			for id, k := range seen {
				if k != 1 {
					t.Errorf("command %s delivered %d times", id, k)
				}
			}
			// Claimed commands are not delivered again.
			if cmds, err := stores[1].ClaimEdgeCommands(ctx, "edge_a"); err != nil || len(cmds) != 0 {
				t.Fatalf("a second claim: %v, %v", cmds, err)
			}
			// The result, written through one store, is read through another,
			// once; another edge's ID does not answer it.
			if _, done, err := stores[0].EdgeCommandResult(ctx, "cmd_A"); err != nil || done {
				t.Fatalf("result before the edge answered: done %v, %v", done, err)
			}
			res := snapshot.EdgeCommandResult{EdgeID: "edge_b", ID: "cmd_A", ErrorCode: codes.SessionNotFound, Msg: "gone"}
			if ok, err := stores[2].FinishEdgeCommand(ctx, res); err != nil || ok {
				t.Fatalf("another edge's result accepted: %v, %v", ok, err)
			}
			res.EdgeID = "edge_a"
			if ok, err := stores[2].FinishEdgeCommand(ctx, res); err != nil || !ok {
				t.Fatalf("FinishEdgeCommand = %v, %v", ok, err)
			}
			if ok, err := stores[1].FinishEdgeCommand(ctx, res); err != nil || ok {
				t.Fatalf("a second result accepted: %v, %v", ok, err)
			}
			got, done, err := stores[0].EdgeCommandResult(ctx, "cmd_A")
			if err != nil || !done || got.ErrorCode != codes.SessionNotFound || got.Msg != "gone" {
				t.Fatalf("result read through another store: %+v done %v, %v", got, done, err)
			}
			if claimed, err := stores[0].DeleteEdgeCommand(ctx, "cmd_A"); err != nil || !claimed {
				t.Fatalf("DeleteEdgeCommand = %v, %v", claimed, err)
			}
			if claimed, err := stores[0].DeleteEdgeCommand(ctx, "cmd_other"); err != nil || claimed {
				t.Fatalf("DeleteEdgeCommand of an unclaimed command = %v, %v", claimed, err)
			}
			if ok, err := stores[2].FinishEdgeCommand(ctx, snapshot.EdgeCommandResult{EdgeID: "edge_b", ID: "cmd_other"}); err != nil || ok {
				t.Fatalf("a withdrawn command's result accepted: %v, %v", ok, err)
			}
		})
	}
}
