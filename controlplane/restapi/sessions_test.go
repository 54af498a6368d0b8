package restapi_test

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
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

func TestTunnelSessionsAndEndpoints(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{BaseURL: "https://api.example.com/"})
	started := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	mine1 := controlplane.SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: e.Dev.AccountID, CredentialID: e.Dev.AuthtokenID,
		PrincipalID: e.Dev.UserID, Transport: "quic", IP: "203.0.113.7", OS: "linux", AgentVersion: "tollgate/0.1", StartedAt: started,
		Endpoints: []snapshot.Endpoint{
			{ID: ids.New(ids.PrefixEndpoint), URL: "https://app.example.com", Proto: "https", ForwardsTo: "http://localhost:8080", StartedAt: started},
			{ID: ids.New(ids.PrefixEndpoint), URL: "tcp://1.tcp.example.com:20002", Proto: "tcp", StartedAt: started},
		}}
	mine2 := controlplane.SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: e.Dev.AccountID, CredentialID: ids.New(ids.PrefixSSHCredential),
		Transport: "ssh", Region: "us", StartedAt: started}
	theirs := controlplane.SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: ids.New(ids.PrefixAccount), StartedAt: started,
		Endpoints: []snapshot.Endpoint{{ID: ids.New(ids.PrefixEndpoint), URL: "https://x.example.com", Proto: "https"}}}
	if err := e.Core.Registry().ReportSessions(cptest.Ctx(t), "eu", []controlplane.SessionInfo{mine1, theirs, {ID: "garbage"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Core.Registry().ReportEdgeSessions(cptest.Ctx(t), "us-1", "us", []controlplane.SessionInfo{mine2}); err != nil {
		t.Fatal(err)
	}

	list := e.Must(200, e.Call("GET", "/tunnel_sessions", e.Admin, nil))
	items, _ := list["tunnel_sessions"].([]any)
	if len(items) != 2 || list["next_page_uri"] != nil || cptest.Str(list, "uri") != "https://api.example.com/tunnel_sessions" {
		t.Fatalf("list = %v", list)
	}
	got := e.Must(200, e.Call("GET", "/tunnel_sessions/"+mine1.ID, e.Admin, nil))
	cred, _ := got["credential"].(map[string]any)
	if cptest.Str(got, "region") != "eu" || cptest.Str(got, "transport") != "quic" || cptest.Str(got, "ip") != "203.0.113.7" ||
		cptest.Str(got, "os") != "linux" || cptest.Str(got, "agent_version") != "tollgate/0.1" || cptest.Str(got, "started_at") != "2026-11-03T10:00:00Z" ||
		cptest.Str(cred, "id") != e.Dev.AuthtokenID || cptest.Str(cred, "uri") != "https://api.example.com/credentials/"+e.Dev.AuthtokenID ||
		cptest.Str(got, "uri") != "https://api.example.com/tunnel_sessions/"+mine1.ID {
		t.Fatalf("session = %v", got)
	}
	ssh := e.Must(200, e.Call("GET", "/tunnel_sessions/"+mine2.ID, e.Admin, nil))
	if c, _ := ssh["credential"].(map[string]any); !strings.Contains(cptest.Str(c, "uri"), "/ssh_credentials/") || cptest.Str(ssh, "region") != "us" {
		t.Fatalf("ssh session = %v", ssh)
	}
	cptest.WantError(t, e.Call("GET", "/tunnel_sessions/"+theirs.ID, e.Admin, nil), 404, string(codes.APINotFound))

	eps := e.Must(200, e.Call("GET", "/endpoints?limit=1", e.Admin, nil))
	epItems, _ := eps["endpoints"].([]any)
	if len(epItems) != 1 || eps["next_page_uri"] == nil {
		t.Fatalf("endpoints page = %v", eps)
	}
	all := e.Must(200, e.Call("GET", "/endpoints", e.Admin, nil))
	epItems, _ = all["endpoints"].([]any)
	if len(epItems) != 2 {
		t.Fatalf("endpoints = %v", all)
	}
	ep := e.Must(200, e.Call("GET", "/endpoints/"+mine1.Endpoints[1].ID, e.Admin, nil))
	ts, _ := ep["tunnel_session"].(map[string]any)
	if cptest.Str(ep, "public_url") != "tcp://1.tcp.example.com:20002" || cptest.Str(ep, "proto") != "tcp" || cptest.Str(ep, "hostport") != "1.tcp.example.com:20002" ||
		cptest.Str(ts, "id") != mine1.ID || cptest.Str(ep, "type") != "agent" || cptest.Str(ep, "region") != "eu" {
		t.Fatalf("endpoint = %v", ep)
	}
	https := e.Must(200, e.Call("GET", "/endpoints/"+mine1.Endpoints[0].ID, e.Admin, nil))
	if cptest.Str(https, "hostport") != "app.example.com:443" || cptest.Str(https, "upstream_url") != "http://localhost:8080" {
		t.Fatalf("https endpoint = %v", https)
	}
	cptest.WantError(t, e.Call("GET", "/endpoints/"+theirs.Endpoints[0].ID, e.Admin, nil), 404, string(codes.APINotFound))

	// An edge's empty report takes its sessions offline.
	if err := e.Core.Registry().ReportSessions(cptest.Ctx(t), "eu", nil); err != nil {
		t.Fatal(err)
	}
	_ = e.Core.Registry().ForgetEdge(cptest.Ctx(t), "us-1")
	list = e.Must(200, e.Call("GET", "/tunnel_sessions", e.Admin, nil))
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
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		_, roKey := e.MemberKey("ro@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		mine := controlplane.SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: e.Dev.AccountID, CredentialID: e.Dev.AuthtokenID,
			PrincipalID: e.Dev.UserID, StartedAt: time.Now()}
		other := controlplane.SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: ids.New(ids.PrefixAccount), StartedAt: time.Now()}
		orphan := controlplane.SessionInfo{ID: ids.New(ids.PrefixAgentSession), AccountID: e.Dev.AccountID, StartedAt: time.Now()}
		if err := e.Core.Registry().ReportSessions(cptest.Ctx(t), "eu", []controlplane.SessionInfo{mine, other}); err != nil {
			t.Fatal(err)
		}
		if err := e.Core.Registry().ReportEdgeSessions(cptest.Ctx(t), "us-2", "us", []controlplane.SessionInfo{orphan}); err != nil {
			t.Fatal(err)
		}
		eu := &fakeCommander{}
		e.Core.Registry().RegisterEdge("eu", eu)

		e.Must(204, e.Call("POST", "/tunnel_sessions/"+mine.ID+"/restart", e.Admin, nil))
		e.Must(204, e.Call("POST", "/tunnel_sessions/"+mine.ID+"/stop", e.Admin, map[string]any{}))
		if got := eu.calls(); !slices.Equal(got, []string{"restart " + mine.ID, "stop " + mine.ID}) {
			t.Fatalf("commands = %v", got)
		}
		// Both are in the audit log, attributed to the admin.
		evs, _, err := e.Store.ListAuditEvents(cptest.Ctx(t), e.Dev.AccountID, store.Page{Limit: 2})
		if err != nil || len(evs) != 2 || evs[0].Type != "tunnel_session_stopped.v0" || evs[1].Type != "tunnel_session_restarted.v0" ||
			evs[0].ObjectID != mine.ID || evs[0].ActorID != e.Dev.UserID || evs[0].ActorCredentialID != e.Dev.APIKeyID {
			t.Fatalf("audit = %+v, %v", evs, err)
		}

		n := len(eu.calls())
		cptest.WantError(t, e.Call("POST", "/tunnel_sessions/"+other.ID+"/stop", e.Admin, nil), 404, string(codes.APINotFound))
		cptest.WantError(t, e.Call("POST", "/tunnel_sessions/"+ids.New(ids.PrefixAgentSession)+"/restart", e.Admin, nil), 404, string(codes.APINotFound))
		cptest.WantError(t, e.Call("POST", "/tunnel_sessions/"+mine.ID+"/stop", roKey, nil), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("GET", "/tunnel_sessions/"+mine.ID+"/stop", e.Admin, nil), 405, string(codes.APIMethodNotAllowed))
		cptest.WantError(t, e.Call("POST", "/tunnel_sessions/"+mine.ID+"/stop", e.Admin, map[string]any{"force": true}), 400, string(codes.APIUnknownParam))
		cptest.WantError(t, e.Call("POST", "/tunnel_sessions/"+e.Dev.AuthtokenID+"/stop", e.Admin, nil), 400, string(codes.APIInvalidID))
		if len(eu.calls()) != n {
			t.Fatal("a refused request reached the edge")
		}
		// The edge of the orphan session registered no command target.
		cptest.WantError(t, e.Call("POST", "/tunnel_sessions/"+orphan.ID+"/stop", e.Admin, nil), 503, string(codes.SessionCommandUnavailable))

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
			cptest.WantError(t, e.Call("POST", "/tunnel_sessions/"+mine.ID+"/stop", e.Admin, nil), tc.status, string(tc.code))
		}
		// A failed command is not audited as done.
		evs, _, _ = e.Store.ListAuditEvents(cptest.Ctx(t), e.Dev.AccountID, store.Page{Limit: 1})
		if len(evs) != 1 || evs[0].Type != "tunnel_session_stopped.v0" || evs[0].Revision != e.Revision() {
			t.Fatalf("latest audit event = %+v", evs)
		}
		// An edge that is forgotten takes its command target with it.
		_ = e.Core.Registry().ForgetEdge(cptest.Ctx(t), "eu")
		cptest.WantError(t, e.Call("POST", "/tunnel_sessions/"+mine.ID+"/stop", e.Admin, nil), 404, string(codes.APINotFound))
		if err := e.Core.Registry().ReportSessions(cptest.Ctx(t), "eu", []controlplane.SessionInfo{mine}); err != nil {
			t.Fatal(err)
		}
		cptest.WantError(t, e.Call("POST", "/tunnel_sessions/"+mine.ID+"/stop", e.Admin, nil), 503, string(codes.SessionCommandUnavailable))
	})
}
