package controlplane

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
)

const testEdgeSecret = "edge-secret-for-tests-0123456789"

func feed(t *testing.T, e *env, after uint64, wait int) (int, config.FeedMessage) {
	t.Helper()
	r := e.call(http.MethodGet, "/edge/v1/snapshot?after="+strconv.FormatUint(after, 10)+"&wait="+strconv.Itoa(wait),
		testEdgeSecret, nil)
	var msg config.FeedMessage
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &msg); err != nil {
			t.Fatalf("feed answer: %v: %s", err, r.body)
		}
	} else if r.status != http.StatusNoContent {
		t.Fatalf("feed: %d %s", r.status, r.body)
	}
	return r.status, msg
}

func principalIDs(d *config.SnapshotData) []string {
	var ids []string
	for _, p := range d.Principals {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestEdgeFeed(t *testing.T) {
	e := newEnv(t, storetest.DSN(t, "sqlite"), ServerConfig{EdgeSecret: testEdgeSecret})

	wantError(t, e.call(http.MethodGet, "/edge/v1/snapshot", "", nil), http.StatusUnauthorized, string(config.CodeEdgeAuth))
	wantError(t, e.call(http.MethodGet, "/edge/v1/snapshot", "wrong", nil), http.StatusUnauthorized, string(config.CodeEdgeAuth))
	wantError(t, e.call(http.MethodGet, "/edge/v1/snapshot", e.admin, nil), http.StatusUnauthorized, string(config.CodeEdgeAuth))
	wantError(t, e.call(http.MethodGet, "/edge/v1/snapshot?after=x", testEdgeSecret, nil), http.StatusBadRequest, string(config.CodeEdgeBadRequest))

	// First request: a whole snapshot.
	status, msg := feed(t, e, 0, 1)
	if status != http.StatusOK || msg.Snapshot == nil || msg.Delta != nil {
		t.Fatalf("first feed answer: %d %+v", status, msg)
	}
	base := *msg.Snapshot
	if base.Revision != e.revision() {
		t.Fatalf("snapshot revision %d, store %d", base.Revision, e.revision())
	}
	// Nothing new: 204 after the wait.
	if status, _ := feed(t, e, base.Revision, 1); status != http.StatusNoContent {
		t.Fatalf("unchanged store: status %d, want 204", status)
	}
	// A change: a delta that turns base into the store's state.
	bot, err := e.store.CreateBotUser(testCtx(t), store.SystemActor, e.dev.AccountID, store.BotUserCreate{Name: "feed", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	status, msg = feed(t, e, base.Revision, 5)
	if status != http.StatusOK || msg.Delta == nil || msg.Snapshot != nil {
		t.Fatalf("after a change: %d %+v, want a delta", status, msg)
	}
	if msg.Delta.Principals == nil || len(msg.Delta.Principals.Upsert) != 1 || msg.Delta.Principals.Upsert[0].ID != bot.ID {
		t.Fatalf("delta principals = %+v, want the new bot user only", msg.Delta.Principals)
	}
	next, err := msg.Delta.Apply(&base)
	if err != nil {
		t.Fatal(err)
	}
	want, err := e.store.BuildSnapshot(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if next.Revision != want.Revision() || !slices.Equal(principalIDs(&next), principalIDs(want.Data())) {
		t.Fatalf("applied delta: revision %d principals %v; store revision %d principals %v",
			next.Revision, principalIDs(&next), want.Revision(), principalIDs(want.Data()))
	}
	// An edge ahead of the store (a reset store) gets the whole snapshot at once.
	status, msg = feed(t, e, next.Revision+1000, 30)
	if status != http.StatusOK || msg.Snapshot == nil || msg.Snapshot.Revision != next.Revision {
		t.Fatalf("edge ahead of the store: %d %+v", status, msg)
	}
	// The in-process feed (tollgated dev) does the same instead of waiting
	// for a revision the store may never reach.
	snap, err := e.srv.Snapshot(testCtx(t), next.Revision+1000)
	if err != nil || snap.Revision() != next.Revision {
		t.Fatalf("in-process feed ahead of the store: %v, %v", snap, err)
	}
}

func TestEdgeReportAndRegions(t *testing.T) {
	e := newEnv(t, storetest.DSN(t, "sqlite"), ServerConfig{EdgeSecret: testEdgeSecret})
	wantError(t, e.call(http.MethodPut, "/edge/v1/sessions", testEdgeSecret, `{"region":"eu"}`), http.StatusBadRequest, string(config.CodeEdgeBadRequest))
	for _, rep := range []config.EdgeReport{
		{EdgeID: "edge_eu1", Region: "eu", AgentAddr: "127.0.0.2:4443"},
		{EdgeID: "edge_us1", Region: "us", AgentAddr: "127.0.0.1:4443"},
		{EdgeID: "edge_eu2", Region: "eu", AgentAddr: "127.0.0.3:4443"},
	} {
		r := e.call(http.MethodPut, "/edge/v1/sessions", testEdgeSecret, rep)
		var ans config.EdgeReportAnswer
		if r.status != http.StatusOK || json.Unmarshal(r.body, &ans) != nil ||
			!slices.ContainsFunc(ans.Edges, func(e config.EdgeInfo) bool { return e.ID == rep.EdgeID && e.AgentAddr == rep.AgentAddr }) {
			t.Fatalf("report: %d %s", r.status, r.body)
		}
	}
	r := e.call(http.MethodGet, "/regions", e.admin, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /regions: %d %s", r.status, r.body)
	}
	var got struct {
		Regions []struct {
			ID    string `json:"id"`
			Edges []struct {
				ID        string `json:"id"`
				AgentAddr string `json:"agent_addr"`
			} `json:"edges"`
		} `json:"regions"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Regions) != 2 || got.Regions[0].ID != "eu" || len(got.Regions[0].Edges) != 2 ||
		got.Regions[0].Edges[1].AgentAddr != "127.0.0.3:4443" || got.Regions[1].ID != "us" {
		t.Fatalf("regions = %s", r.body)
	}
	wantError(t, e.call(http.MethodGet, "/regions", "", nil), http.StatusUnauthorized, string(config.CodeAPIAuthMissing))
}

func TestEdgeAPIDisabledWithoutSecret(t *testing.T) {
	e := newEnv(t, storetest.DSN(t, "sqlite"), ServerConfig{})
	wantError(t, e.call(http.MethodGet, "/edge/v1/snapshot", "anything", nil), http.StatusForbidden, string(config.CodeEdgeAuth))
}
