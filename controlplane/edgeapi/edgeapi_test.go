package edgeapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

const testEdgeSecret = "edge-secret-for-tests-0123456789"

func feed(t *testing.T, e *cptest.Env, after uint64, wait int) (int, snapshot.FeedMessage) {
	t.Helper()
	r := e.Call(http.MethodGet, "/edge/v1/snapshot?after="+strconv.FormatUint(after, 10)+"&wait="+strconv.Itoa(wait),
		testEdgeSecret, nil)
	var msg snapshot.FeedMessage
	if r.Status == http.StatusOK {
		if err := json.Unmarshal(r.Body, &msg); err != nil {
			t.Fatalf("feed answer: %v: %s", err, r.Body)
		}
	} else if r.Status != http.StatusNoContent {
		t.Fatalf("feed: %d %s", r.Status, r.Body)
	}
	return r.Status, msg
}

func principalIDs(d *snapshot.Data) []string {
	var ids []string
	for _, p := range d.Principals {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestEdgeFeed(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{EdgeSecret: testEdgeSecret})

	cptest.WantError(t, e.Call(http.MethodGet, "/edge/v1/snapshot", "", nil), http.StatusUnauthorized, string(codes.EdgeAuth))
	cptest.WantError(t, e.Call(http.MethodGet, "/edge/v1/snapshot", "wrong", nil), http.StatusUnauthorized, string(codes.EdgeAuth))
	cptest.WantError(t, e.Call(http.MethodGet, "/edge/v1/snapshot", e.Admin, nil), http.StatusUnauthorized, string(codes.EdgeAuth))
	cptest.WantError(t, e.Call(http.MethodGet, "/edge/v1/snapshot?after=x", testEdgeSecret, nil), http.StatusBadRequest, string(codes.EdgeBadRequest))

	// First request: a whole snapshot.
	status, msg := feed(t, e, 0, 1)
	if status != http.StatusOK || msg.Snapshot == nil || msg.Delta != nil {
		t.Fatalf("first feed answer: %d %+v", status, msg)
	}
	base := *msg.Snapshot
	if base.Revision != e.Revision() {
		t.Fatalf("snapshot revision %d, store %d", base.Revision, e.Revision())
	}
	// Nothing new: 204 after the wait.
	if status, _ := feed(t, e, base.Revision, 1); status != http.StatusNoContent {
		t.Fatalf("unchanged store: status %d, want 204", status)
	}
	// A change: a delta that turns base into the store's state.
	bot, err := e.Store.CreateBotUser(cptest.Ctx(t), store.SystemActor, e.Dev.AccountID, store.BotUserCreate{Name: "feed", Active: true})
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
	want, err := e.Store.BuildSnapshot(cptest.Ctx(t))
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
	snap, err := e.Core.Snapshot(cptest.Ctx(t), next.Revision+1000)
	if err != nil || snap.Revision() != next.Revision {
		t.Fatalf("in-process feed ahead of the store: %v, %v", snap, err)
	}
}

func TestEdgeReportAndRegions(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{EdgeSecret: testEdgeSecret})
	cptest.WantError(t, e.Call(http.MethodPut, "/edge/v1/sessions", testEdgeSecret, `{"region":"eu"}`), http.StatusBadRequest, string(codes.EdgeBadRequest))
	for _, rep := range []snapshot.EdgeReport{
		{EdgeID: "edge_eu1", Region: "eu", AgentAddr: "127.0.0.2:4443"},
		{EdgeID: "edge_us1", Region: "us", AgentAddr: "127.0.0.1:4443"},
		{EdgeID: "edge_eu2", Region: "eu", AgentAddr: "127.0.0.3:4443"},
	} {
		r := e.Call(http.MethodPut, "/edge/v1/sessions", testEdgeSecret, rep)
		var ans snapshot.EdgeReportAnswer
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &ans) != nil ||
			!slices.ContainsFunc(ans.Edges, func(e snapshot.EdgeInfo) bool { return e.ID == rep.EdgeID && e.AgentAddr == rep.AgentAddr }) {
			t.Fatalf("report: %d %s", r.Status, r.Body)
		}
	}
	r := e.Call(http.MethodGet, "/regions", e.Admin, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /regions: %d %s", r.Status, r.Body)
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
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Regions) != 2 || got.Regions[0].ID != "eu" || len(got.Regions[0].Edges) != 2 ||
		got.Regions[0].Edges[1].AgentAddr != "127.0.0.3:4443" || got.Regions[1].ID != "us" {
		t.Fatalf("regions = %s", r.Body)
	}
	cptest.WantError(t, e.Call(http.MethodGet, "/regions", "", nil), http.StatusUnauthorized, string(codes.APIAuthMissing))
}

func TestEdgeAPIDisabledWithoutSecret(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{})
	cptest.WantError(t, e.Call(http.MethodGet, "/edge/v1/snapshot", "anything", nil), http.StatusForbidden, string(codes.EdgeAuth))
}

// pollCommands performs one GET /edge/v1/commands.
func pollCommands(t *testing.T, e *cptest.Env, edgeID string, known uint64, wait int) snapshot.EdgeCommands {
	t.Helper()
	r := e.Call(http.MethodGet, "/edge/v1/commands?edge_id="+edgeID+"&known="+strconv.FormatUint(known, 10)+"&wait="+strconv.Itoa(wait), testEdgeSecret, nil)
	var ans snapshot.EdgeCommands
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &ans) != nil {
		t.Errorf("command poll: %d %s", r.Status, r.Body)
	}
	return ans
}

// TestEdgeCommands carries stop commands to a remote edge over the command
// poll and their results back to the API call, and wakes a poll when the
// set of edges changes.
func TestEdgeCommands(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{EdgeSecret: testEdgeSecret})
	cptest.WantError(t, e.Call(http.MethodGet, "/edge/v1/commands", testEdgeSecret, nil), http.StatusBadRequest, string(codes.EdgeBadRequest))
	cptest.WantError(t, e.Call(http.MethodGet, "/edge/v1/commands?edge_id=edge_eu1", e.Admin, nil), http.StatusUnauthorized, string(codes.EdgeAuth))

	// An edge the control plane has no report from is asked for one.
	first := pollCommands(t, e, "edge_eu1", 0, 5)
	if !first.ReportNeeded || first.EdgesVersion == 0 || len(first.Commands) != 0 {
		t.Fatalf("first poll = %+v, want a report request", first)
	}
	sid := ids.New(ids.PrefixAgentSession)
	rep := snapshot.EdgeReport{EdgeID: "edge_eu1", Region: "eu", AgentAddr: "127.0.0.2:4443", Sessions: []snapshot.AgentSession{{
		ID: sid, AccountID: e.Dev.AccountID, CredentialID: e.Dev.AuthtokenID, PrincipalID: e.Dev.UserID, Transport: "tcp",
	}}}
	if r := e.Call(http.MethodPut, "/edge/v1/sessions", testEdgeSecret, rep); r.Status != http.StatusOK {
		t.Fatalf("report: %d %s", r.Status, r.Body)
	}
	cptest.WantError(t, e.Call(http.MethodPut, "/edge/v1/sessions", testEdgeSecret, snapshot.EdgeReport{EdgeID: "edge_x", Region: "mars"}),
		http.StatusBadRequest, string(codes.EdgeBadRequest))
	ans := pollCommands(t, e, "edge_eu1", 0, 5)
	if ans.ReportNeeded || len(ans.Edges) != 1 || ans.Edges[0].ID != "edge_eu1" {
		t.Fatalf("poll after the report = %+v", ans)
	}
	version := ans.EdgesVersion

	for _, c := range []struct {
		code       codes.Code
		wantStatus int
	}{
		{"", http.StatusNoContent},
		{codes.SessionNotFound, http.StatusNotFound},
		{codes.SessionCommandUnsupported, http.StatusConflict},
	} {
		polled := make(chan snapshot.EdgeCommands, 1)
		go func() { polled <- pollCommands(t, e, "edge_eu1", version, 20) }()
		apiDone := make(chan cptest.Response, 1)
		go func() { apiDone <- e.Call(http.MethodPost, "/tunnel_sessions/"+sid+"/stop", e.Admin, nil) }()
		var got snapshot.EdgeCommands
		select {
		case got = <-polled:
		case <-time.After(15 * time.Second):
			t.Fatal("the command poll did not return a queued command")
		}
		if len(got.Commands) != 1 || got.Commands[0].Verb != snapshot.EdgeCommandStop || got.Commands[0].SessionID != sid {
			t.Fatalf("polled %+v, want one stop for %s", got, sid)
		}
		res := snapshot.EdgeCommandResult{EdgeID: "edge_eu1", ID: got.Commands[0].ID, ErrorCode: c.code, Msg: "from the edge"}
		if r := e.Call(http.MethodPost, "/edge/v1/commands/results", testEdgeSecret, res); r.Status != http.StatusNoContent {
			t.Fatalf("posting the result: %d %s", r.Status, r.Body)
		}
		select {
		case r := <-apiDone:
			if r.Status != c.wantStatus {
				t.Fatalf("stop with edge result %q: %d %s, want %d", c.code, r.Status, r.Body, c.wantStatus)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the API call did not return after the result")
		}
	}

	// A new edge ends a poll (waiting, or arriving after it) with the new
	// edge set well before its wait.
	polled := make(chan snapshot.EdgeCommands, 1)
	go func() { polled <- pollCommands(t, e, "edge_eu1", version, 20) }()
	if r := e.Call(http.MethodPut, "/edge/v1/sessions", testEdgeSecret, snapshot.EdgeReport{EdgeID: "edge_us1", Region: "us", AgentAddr: "127.0.0.1:4443"}); r.Status != http.StatusOK {
		t.Fatalf("report: %d %s", r.Status, r.Body)
	}
	select {
	case got := <-polled:
		if got.EdgesVersion == version || len(got.Edges) != 2 {
			t.Fatalf("poll after a new edge = %+v", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a new edge did not wake the poll")
	}
}
