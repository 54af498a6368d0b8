package controlplane_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/snapshot"
)

// TestRegistryReplicasAgree: two Cores on one database (two control-plane
// processes). An edge reports to A and polls A for commands; B lists the
// same edges and sessions, and a command issued through B is delivered
// through A's poll (once) and B sees the edge's result.
func TestRegistryReplicasAgree(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			cfg := controlplane.Config{PollInterval: 20 * time.Millisecond}
			a := controlplane.New(cfg, cptest.OpenStore(t, dsn)).Registry()
			b := controlplane.New(cfg, cptest.OpenStore(t, dsn)).Registry()
			ctx := cptest.Ctx(t)
			sess := snapshot.AgentSession{ID: "ts_3N7qSGg1NVKmOwSKD6PWNV9HeiI", AccountID: "ac_1",
				Endpoints: []snapshot.Endpoint{{ID: "ep_1", URL: "https://app.example.com"}}}
			quiet := snapshot.AgentSession{ID: "ts_3N7qSGg1NVKmOwSKD6PWNV9HeiJ", AccountID: "ac_1"}
			if err := a.Report(ctx, snapshot.EdgeReport{EdgeID: "edge_a", Region: "us", AgentAddr: "127.0.0.1:4443",
				Sessions: []snapshot.AgentSession{sess}}); err != nil {
				t.Fatal(err)
			}
			// An edge that reports but never polls takes no commands.
			if err := a.Report(ctx, snapshot.EdgeReport{EdgeID: "edge_q", Region: "eu", AgentAddr: "127.0.0.2:4443",
				Sessions: []snapshot.AgentSession{quiet}}); err != nil {
				t.Fatal(err)
			}
			for _, g := range []*controlplane.Registry{a, b} {
				edges, err := g.LiveEdges(ctx)
				if err != nil || len(edges) != 2 || edges[0].ID != "edge_q" || edges[1].ID != "edge_a" {
					t.Fatalf("LiveEdges = %+v, %v", edges, err)
				}
				list, err := g.AccountSessions(ctx, "ac_1")
				if err != nil || len(list) != 2 || list[0].ID != quiet.ID || list[1].Region != "us" {
					t.Fatalf("AccountSessions = %+v, %v", list, err)
				}
				eps, err := g.AccountEndpoints(ctx, "ac_1")
				if err != nil || len(eps) != 1 || eps[0].URL != "https://app.example.com" {
					t.Fatalf("AccountEndpoints = %+v, %v", eps, err)
				}
				if other, err := g.AccountSessions(ctx, "ac_2"); err != nil || len(other) != 0 {
					t.Fatalf("another account's sessions = %+v, %v", other, err)
				}
			}
			if _, cmd, ok, err := b.SessionEdge(ctx, "ac_1", quiet.ID); err != nil || !ok || cmd != nil {
				t.Fatalf("SessionEdge of a session on an edge that never polled: %v %v %v", cmd, ok, err)
			}
			if _, _, ok, err := b.SessionEdge(ctx, "ac_2", sess.ID); err != nil || ok {
				t.Fatalf("SessionEdge of another account's session: %v %v", ok, err)
			}

			// The edge's first poll of A answers at once with the edge set;
			// both processes compute the same version.
			first, err := a.WaitCommands(ctx, "edge_a", 0, time.Second)
			if err != nil || first.ReportNeeded || len(first.Edges) != 2 || len(first.Commands) != 0 {
				t.Fatalf("first poll: %+v, %v", first, err)
			}
			atB, err := b.WaitCommands(ctx, "edge_other", 0, time.Second)
			if err != nil || atB.EdgesVersion != first.EdgesVersion || !reflect.DeepEqual(atB.Edges, first.Edges) || !atB.ReportNeeded {
				t.Fatalf("poll at B: %+v, %v; at A %+v", atB, err, first)
			}
			// A long poll at A; a stop through B reaches it.
			polled := make(chan snapshot.EdgeCommands, 1)
			go func() {
				ans, err := a.WaitCommands(ctx, "edge_a", first.EdgesVersion, 20*time.Second)
				if err != nil {
					t.Error(err)
				}
				polled <- ans
			}()
			_, cmd, ok, err := b.SessionEdge(ctx, "ac_1", sess.ID)
			if err != nil || !ok || cmd == nil {
				t.Fatalf("SessionEdge at B: %v %v %v", cmd, ok, err)
			}
			stopped := make(chan error, 1)
			go func() { stopped <- cmd.StopSession(ctx, sess.ID) }()
			var ans snapshot.EdgeCommands
			select {
			case ans = <-polled:
			case <-time.After(10 * time.Second):
				t.Fatal("A's poll never delivered the command issued through B")
			}
			if len(ans.Commands) != 1 || ans.Commands[0].Verb != snapshot.EdgeCommandStop || ans.Commands[0].SessionID != sess.ID {
				t.Fatalf("delivered %+v", ans)
			}
			// Delivered once: another poll, at either process, finds nothing.
			for _, g := range []*controlplane.Registry{a, b} {
				again, err := g.WaitCommands(ctx, "edge_a", first.EdgesVersion, 50*time.Millisecond)
				if err != nil || len(again.Commands) != 0 {
					t.Fatalf("a second poll: %+v, %v", again, err)
				}
			}
			// The edge posts its result to A; B's call returns it.
			if err := a.DeliverResult(ctx, snapshot.EdgeCommandResult{EdgeID: "edge_a", ID: ans.Commands[0].ID}); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatalf("stop through B: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("B never saw the edge's result")
			}

			// A failure travels back with its code.
			go func() { stopped <- cmd.RestartSession(ctx, sess.ID) }()
			var got snapshot.EdgeCommands
			for deadline := time.Now().Add(10 * time.Second); len(got.Commands) == 0; {
				if time.Now().After(deadline) {
					t.Fatal("the restart was never delivered")
				}
				if got, err = a.WaitCommands(ctx, "edge_a", first.EdgesVersion, time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.DeliverResult(ctx, snapshot.EdgeCommandResult{EdgeID: "edge_a", ID: got.Commands[0].ID,
				ErrorCode: codes.SessionCommandUnsupported, Msg: "no restarts"}); err != nil {
				t.Fatal(err)
			}
			var ce *codes.Error
			if err := <-stopped; !errors.As(err, &ce) || ce.Code != codes.SessionCommandUnsupported {
				t.Fatalf("restart through B: %v", err)
			}

			// A command nobody claims is withdrawn when its call ends.
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			err = cmd.StopSession(short, sess.ID)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("an unclaimed stop: %v", err)
			}
			if late, err := a.WaitCommands(ctx, "edge_a", first.EdgesVersion, 50*time.Millisecond); err != nil || len(late.Commands) != 0 {
				t.Fatalf("a withdrawn command delivered: %+v, %v", late, err)
			}

			// ForgetEdge through B: gone for A too.
			if err := b.ForgetEdge(ctx, "edge_a"); err != nil {
				t.Fatal(err)
			}
			if list, err := a.AccountSessions(ctx, "ac_1"); err != nil || len(list) != 1 || list[0].ID != quiet.ID {
				t.Fatalf("sessions at A after B forgot edge_a: %+v, %v", list, err)
			}
		})
	}
}
