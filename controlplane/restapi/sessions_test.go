package controlplane

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

func TestTunnelSessionsAndEndpoints(t *testing.T) {
	e := newEnv(t, storetest.DSN(t, "sqlite"), ServerConfig{BaseURL: "https://api.example.com/"})
	started := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	mine1 := SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: e.dev.AccountID, CredentialID: e.dev.AuthtokenID,
		PrincipalID: e.dev.UserID, Transport: "quic", IP: "203.0.113.7", OS: "linux", AgentVersion: "tollgate/0.1", StartedAt: started,
		Endpoints: []snapshot.Endpoint{
			{ID: ids.New(ids.PrefixEndpoint), URL: "https://app.example.com", Proto: "https", ForwardsTo: "http://localhost:8080", StartedAt: started},
			{ID: ids.New(ids.PrefixEndpoint), URL: "tcp://1.tcp.example.com:20002", Proto: "tcp", StartedAt: started},
		}}
	mine2 := SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: e.dev.AccountID, CredentialID: ids.New(ids.PrefixSSHCredential),
		Transport: "ssh", Region: "us", StartedAt: started}
	theirs := SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: ids.New(ids.PrefixAccount), StartedAt: started,
		Endpoints: []snapshot.Endpoint{{ID: ids.New(ids.PrefixEndpoint), URL: "https://x.example.com", Proto: "https"}}}
	if err := e.srv.ReportSessions(testCtx(t), "eu", []SessionInfo{mine1, theirs, {ID: "garbage"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ReportEdgeSessions(testCtx(t), "us-1", "us", []SessionInfo{mine2}); err != nil {
		t.Fatal(err)
	}

	list := e.must(200, e.call("GET", "/tunnel_sessions", e.admin, nil))
	items, _ := list["tunnel_sessions"].([]any)
	if len(items) != 2 || list["next_page_uri"] != nil || str(list, "uri") != "https://api.example.com/tunnel_sessions" {
		t.Fatalf("list = %v", list)
	}
	got := e.must(200, e.call("GET", "/tunnel_sessions/"+mine1.ID, e.admin, nil))
	cred, _ := got["credential"].(map[string]any)
	if str(got, "region") != "eu" || str(got, "transport") != "quic" || str(got, "ip") != "203.0.113.7" ||
		str(got, "os") != "linux" || str(got, "agent_version") != "tollgate/0.1" || str(got, "started_at") != "2026-11-03T10:00:00Z" ||
		str(cred, "id") != e.dev.AuthtokenID || str(cred, "uri") != "https://api.example.com/credentials/"+e.dev.AuthtokenID ||
		str(got, "uri") != "https://api.example.com/tunnel_sessions/"+mine1.ID {
		t.Fatalf("session = %v", got)
	}
	ssh := e.must(200, e.call("GET", "/tunnel_sessions/"+mine2.ID, e.admin, nil))
	if c, _ := ssh["credential"].(map[string]any); !strings.Contains(str(c, "uri"), "/ssh_credentials/") || str(ssh, "region") != "us" {
		t.Fatalf("ssh session = %v", ssh)
	}
	wantError(t, e.call("GET", "/tunnel_sessions/"+theirs.ID, e.admin, nil), 404, string(codes.APINotFound))

	eps := e.must(200, e.call("GET", "/endpoints?limit=1", e.admin, nil))
	epItems, _ := eps["endpoints"].([]any)
	if len(epItems) != 1 || eps["next_page_uri"] == nil {
		t.Fatalf("endpoints page = %v", eps)
	}
	all := e.must(200, e.call("GET", "/endpoints", e.admin, nil))
	epItems, _ = all["endpoints"].([]any)
	if len(epItems) != 2 {
		t.Fatalf("endpoints = %v", all)
	}
	ep := e.must(200, e.call("GET", "/endpoints/"+mine1.Endpoints[1].ID, e.admin, nil))
	ts, _ := ep["tunnel_session"].(map[string]any)
	if str(ep, "public_url") != "tcp://1.tcp.example.com:20002" || str(ep, "proto") != "tcp" || str(ep, "hostport") != "1.tcp.example.com:20002" ||
		str(ts, "id") != mine1.ID || str(ep, "type") != "agent" || str(ep, "region") != "eu" {
		t.Fatalf("endpoint = %v", ep)
	}
	https := e.must(200, e.call("GET", "/endpoints/"+mine1.Endpoints[0].ID, e.admin, nil))
	if str(https, "hostport") != "app.example.com:443" || str(https, "upstream_url") != "http://localhost:8080" {
		t.Fatalf("https endpoint = %v", https)
	}
	wantError(t, e.call("GET", "/endpoints/"+theirs.Endpoints[0].ID, e.admin, nil), 404, string(codes.APINotFound))

	// An edge's empty report takes its sessions offline.
	if err := e.srv.ReportSessions(testCtx(t), "eu", nil); err != nil {
		t.Fatal(err)
	}
	e.srv.ForgetEdge("us-1")
	list = e.must(200, e.call("GET", "/tunnel_sessions", e.admin, nil))
	if items, _ := list["tunnel_sessions"].([]any); len(items) != 0 || list["tunnel_sessions"] == nil {
		t.Fatalf("after the edge reported none: %v", list)
	}
}

// fakeCommander records commands and answers with err.
type fakeCommander struct {
	mu  sync.Mutex
	got []string // "stop ts_..." / "restart ts_..."
	err error
}

func (f *fakeCommander) StopSession(ctx context.Context, id string) error {
	return f.record("stop " + id)
}

func (f *fakeCommander) RestartSession(ctx context.Context, id string) error {
	return f.record("restart " + id)
}

func (f *fakeCommander) record(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, s)
	return f.err
}

func (f *fakeCommander) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

func TestTunnelSessionCommands(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		_, roKey := e.memberKey("ro@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		mine := SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: e.dev.AccountID, CredentialID: e.dev.AuthtokenID,
			PrincipalID: e.dev.UserID, StartedAt: time.Now()}
		other := SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: ids.New(ids.PrefixAccount), StartedAt: time.Now()}
		orphan := SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: e.dev.AccountID, StartedAt: time.Now()}
		if err := e.srv.ReportSessions(testCtx(t), "eu", []SessionInfo{mine, other}); err != nil {
			t.Fatal(err)
		}
		if err := e.srv.ReportEdgeSessions(testCtx(t), "us-2", "us", []SessionInfo{orphan}); err != nil {
			t.Fatal(err)
		}
		eu := &fakeCommander{}
		e.srv.RegisterEdge("eu", eu)

		e.must(204, e.call("POST", "/tunnel_sessions/"+mine.ID+"/restart", e.admin, nil))
		e.must(204, e.call("POST", "/tunnel_sessions/"+mine.ID+"/stop", e.admin, map[string]any{}))
		if got := eu.calls(); !slices.Equal(got, []string{"restart " + mine.ID, "stop " + mine.ID}) {
			t.Fatalf("commands = %v", got)
		}
		// Both are in the audit log, attributed to the admin.
		evs, _, err := e.store.ListAuditEvents(testCtx(t), e.dev.AccountID, store.Page{Limit: 2})
		if err != nil || len(evs) != 2 || evs[0].Type != "tunnel_session_stopped.v0" || evs[1].Type != "tunnel_session_restarted.v0" ||
			evs[0].ObjectID != mine.ID || evs[0].ActorID != e.dev.UserID || evs[0].ActorCredentialID != e.dev.APIKeyID {
			t.Fatalf("audit = %+v, %v", evs, err)
		}

		n := len(eu.calls())
		wantError(t, e.call("POST", "/tunnel_sessions/"+other.ID+"/stop", e.admin, nil), 404, string(codes.APINotFound))
		wantError(t, e.call("POST", "/tunnel_sessions/"+ids.New(ids.PrefixAgentSession)+"/restart", e.admin, nil), 404, string(codes.APINotFound))
		wantError(t, e.call("POST", "/tunnel_sessions/"+mine.ID+"/stop", roKey, nil), 403, string(codes.APIForbidden))
		wantError(t, e.call("GET", "/tunnel_sessions/"+mine.ID+"/stop", e.admin, nil), 405, string(codes.APIMethodNotAllowed))
		wantError(t, e.call("POST", "/tunnel_sessions/"+mine.ID+"/stop", e.admin, map[string]any{"force": true}), 400, string(codes.APIUnknownParam))
		wantError(t, e.call("POST", "/tunnel_sessions/"+e.dev.AuthtokenID+"/stop", e.admin, nil), 400, string(codes.APIInvalidID))
		if len(eu.calls()) != n {
			t.Fatal("a refused request reached the edge")
		}
		// The edge of the orphan session registered no command target.
		wantError(t, e.call("POST", "/tunnel_sessions/"+orphan.ID+"/stop", e.admin, nil), 503, string(codes.SessionCommandUnavailable))

		// What the edge answers reaches the caller with its code.
		for _, tc := range []struct {
			err    error
			status int
			code   codes.Code
		}{
			{codes.NewError(codes.SessionCommandUnsupported, "The agent does not support stop."), 409, codes.SessionCommandUnsupported},
			{codes.NewError(codes.SessionCommandRefused, "The agent refused: busy"), 409, codes.SessionCommandRefused},
			{fmt.Errorf("wrapped: %w", codes.NewError(codes.SessionNotFound, "gone")), 404, codes.APINotFound},
			{codes.NewError(codes.SessionCommandFailed, "no answer"), 502, codes.SessionCommandFailed},
			{context.DeadlineExceeded, 504, codes.SessionCommandFailed},
			{errors.New("stream reset"), 502, codes.SessionCommandFailed},
		} {
			eu.mu.Lock()
			eu.err = tc.err
			eu.mu.Unlock()
			wantError(t, e.call("POST", "/tunnel_sessions/"+mine.ID+"/stop", e.admin, nil), tc.status, string(tc.code))
		}
		// A failed command is not audited as done.
		evs, _, _ = e.store.ListAuditEvents(testCtx(t), e.dev.AccountID, store.Page{Limit: 1})
		if len(evs) != 1 || evs[0].Type != "tunnel_session_stopped.v0" || evs[0].Revision != e.revision() {
			t.Fatalf("latest audit event = %+v", evs)
		}
		// An edge that is forgotten takes its command target with it.
		e.srv.ForgetEdge("eu")
		wantError(t, e.call("POST", "/tunnel_sessions/"+mine.ID+"/stop", e.admin, nil), 404, string(codes.APINotFound))
		if err := e.srv.ReportSessions(testCtx(t), "eu", []SessionInfo{mine}); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.call("POST", "/tunnel_sessions/"+mine.ID+"/stop", e.admin, nil), 503, string(codes.SessionCommandUnavailable))
	})
}
