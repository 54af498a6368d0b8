package controlclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/edgeapi"
	"github.com/tollgate/tollgate/controlplane/restapi"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/edge/controlclient"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

// secret is the edge secret of the control planes these tests run.
const secret = "edge-secret-0123456789abcdef"

// startControlPlane runs a control plane on a fresh SQLite store with its
// edge API and REST API on one test server (as on the API listener), and
// returns the server, the store and the dev bootstrap's credentials. All
// stop at the end of the test.
func startControlPlane(ctx context.Context, t *testing.T) (*httptest.Server, *store.Store, *controlplane.DevCredentials) {
	t.Helper()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "cp.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	core := controlplane.New(controlplane.Config{}, st)
	dev, _, err := controlplane.Bootstrap(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(edgeapi.Mount(edgeapi.New(edgeapi.Config{Secret: secret}, core).Handler(),
		restapi.New(restapi.Config{}, core).Handler()))
	t.Cleanup(hs.Close)
	return hs, st, dev
}

// TestClient follows a real control plane's edge API over HTTP: a
// whole snapshot first, then a delta applied to it, and a session report
// answered with the edge directory.
func TestClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hs, st, dev := startControlPlane(ctx, t)

	newClient := func(secret string) *controlclient.Client {
		c, err := controlclient.NewClient(controlclient.ClientConfig{URL: hs.URL, Secret: secret,
			EdgeID: "edge_eu1", Region: "eu", AgentAddr: "127.0.0.2:4443", Wait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := newClient(secret)
	first, err := c.Snapshot(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := first.Account(dev.AccountID); !ok {
		t.Fatalf("first snapshot lacks the account %s", dev.AccountID)
	}
	bot, err := st.CreateBotUser(ctx, store.SystemActor, dev.AccountID, store.BotUserCreate{Name: "remote", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	next, err := c.Snapshot(ctx, first.Revision())
	if err != nil {
		t.Fatal(err)
	}
	if next.Revision() <= first.Revision() {
		t.Fatalf("second snapshot revision %d, first %d", next.Revision(), first.Revision())
	}
	if p, ok := next.Principal(bot.ID); !ok || !p.Active {
		t.Fatalf("the delta did not bring the new bot user %s", bot.ID)
	}
	if _, ok := next.Account(dev.AccountID); !ok {
		t.Fatal("applying the delta lost the account")
	}

	if err := c.ReportSessions(ctx, "eu", nil); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(c.Edges(), func(e snapshot.EdgeInfo) bool { return e.ID == "edge_eu1" && e.Region == "eu" }) {
		t.Fatalf("directory after report = %+v", c.Edges())
	}

	// A fresh client (an edge restarted from its persisted snapshot) with
	// nothing new to get waits instead of returning the same revision.
	short, stop := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer stop()
	if s, err := newClient(secret).Snapshot(short, next.Revision()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unchanged store: got %v, %v; want to wait until the deadline", s, err)
	}

	var ce *codes.Error
	if _, err := newClient("wrong-secret").Snapshot(ctx, 0); !errors.As(err, &ce) || ce.Code != codes.EdgeAuth {
		t.Fatalf("wrong secret: %v, want %s", err, codes.EdgeAuth)
	}
}

// TestClientCommands polls a real control plane for session
// commands: the first poll asks for a report; a stop queued by the API
// arrives at the poll, and the result the client posts answers the API
// call; a new edge arrives in the client's directory through the poll.
func TestClientCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hs, _, dev := startControlPlane(ctx, t)
	newClient := func(id, region, addr string) *controlclient.Client {
		c, err := controlclient.NewClient(controlclient.ClientConfig{URL: hs.URL, Secret: secret,
			EdgeID: id, Region: region, AgentAddr: addr, Wait: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := newClient("edge_eu1", "eu", "127.0.0.2:4443")
	ans, err := c.Commands(ctx)
	if err != nil || !ans.ReportNeeded {
		t.Fatalf("first poll: %+v, %v; want a report request", ans, err)
	}
	sid := ids.New(ids.PrefixAgentSession)
	if err := c.ReportSessions(ctx, "eu", []snapshot.AgentSession{{ID: sid, AccountID: dev.AccountID, Transport: "tcp"}}); err != nil {
		t.Fatal(err)
	}
	if ans, err = c.Commands(ctx); err != nil || ans.ReportNeeded || len(ans.Edges) != 1 {
		t.Fatalf("poll after the report: %+v, %v", ans, err)
	}

	status := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/tunnel_sessions/"+sid+"/restart", nil)
		req.Header.Set("Authorization", "Bearer "+dev.APIKey.Reveal())
		req.Header.Set("Ngrok-Version", "2")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	var cmd snapshot.EdgeCommand
	for i := 0; i < 5 && cmd.ID == ""; i++ { // bounded: each poll waits at most 5s
		ans, err := c.Commands(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ans.Commands) > 0 {
			cmd = ans.Commands[0]
		}
	}
	if cmd.Verb != snapshot.EdgeCommandRestart || cmd.SessionID != sid {
		t.Fatalf("polled command %+v, want a restart of %s", cmd, sid)
	}
	if err := c.CommandResult(ctx, snapshot.EdgeCommandResult{ID: cmd.ID}); err != nil {
		t.Fatal(err)
	}
	if got := <-status; got != http.StatusNoContent {
		t.Fatalf("restart through the remote edge: HTTP %d, want 204", got)
	}

	// Another edge reports: the waiting poll brings it into the directory.
	polled := make(chan error, 1)
	go func() { _, err := c.Commands(ctx); polled <- err }()
	if err := newClient("edge_us1", "us", "127.0.0.1:4443").ReportSessions(ctx, "us", nil); err != nil {
		t.Fatal(err)
	}
	if err := <-polled; err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(c.Edges(), func(e snapshot.EdgeInfo) bool { return e.ID == "edge_us1" && e.AgentAddr == "127.0.0.1:4443" }) {
		t.Fatalf("directory after another edge reported = %+v", c.Edges())
	}
}
