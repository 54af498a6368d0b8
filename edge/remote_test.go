package edge_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/edge"
)

// TestControlClient follows a real control plane's edge API over HTTP: a
// whole snapshot first, then a delta applied to it, and a session report
// answered with the edge directory.
func TestControlClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "cp.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const secret = "edge-secret-0123456789abcdef"
	srv := controlplane.NewServer(st, controlplane.ServerConfig{EdgeSecret: secret})
	dev, _, err := controlplane.Bootstrap(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	newClient := func(secret string) *edge.ControlClient {
		c, err := edge.NewControlClient(edge.ControlClientConfig{URL: hs.URL, Secret: secret,
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
	if !slices.ContainsFunc(c.Edges(), func(e config.EdgeInfo) bool { return e.ID == "edge_eu1" && e.Region == "eu" }) {
		t.Fatalf("directory after report = %+v", c.Edges())
	}

	// A fresh client (an edge restarted from its persisted snapshot) with
	// nothing new to get waits instead of returning the same revision.
	short, stop := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer stop()
	if s, err := newClient(secret).Snapshot(short, next.Revision()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unchanged store: got %v, %v; want to wait until the deadline", s, err)
	}

	var ce *config.Error
	if _, err := newClient("wrong-secret").Snapshot(ctx, 0); !errors.As(err, &ce) || ce.Code != config.CodeEdgeAuth {
		t.Fatalf("wrong secret: %v, want %s", err, config.CodeEdgeAuth)
	}
}
