package controlplane

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
)

func TestTunnelSessionsAndEndpoints(t *testing.T) {
	e := newEnv(t, storetest.DSN(t, "sqlite"), ServerConfig{BaseURL: "https://api.example.com/"})
	started := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	mine1 := SessionInfo{ID: config.NewID(config.PrefixAgentSession), AccountID: e.dev.AccountID, CredentialID: e.dev.AuthtokenID,
		PrincipalID: e.dev.UserID, Transport: "quic", IP: "203.0.113.7", OS: "linux", AgentVersion: "tollgate/0.1", StartedAt: started,
		Endpoints: []config.Endpoint{
			{ID: config.NewID(config.PrefixEndpoint), URL: "https://app.example.com", Proto: "https", ForwardsTo: "http://localhost:8080", StartedAt: started},
			{ID: config.NewID(config.PrefixEndpoint), URL: "tcp://1.tcp.example.com:20002", Proto: "tcp", StartedAt: started},
		}}
	mine2 := SessionInfo{ID: config.NewID(config.PrefixAgentSession), AccountID: e.dev.AccountID, CredentialID: config.NewID(config.PrefixSSHCredential),
		Transport: "ssh", Region: "us", StartedAt: started}
	theirs := SessionInfo{ID: config.NewID(config.PrefixAgentSession), AccountID: config.NewID(config.PrefixAccount), StartedAt: started,
		Endpoints: []config.Endpoint{{ID: config.NewID(config.PrefixEndpoint), URL: "https://x.example.com", Proto: "https"}}}
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
	wantError(t, e.call("GET", "/tunnel_sessions/"+theirs.ID, e.admin, nil), 404, string(config.CodeAPINotFound))

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
	wantError(t, e.call("GET", "/endpoints/"+theirs.Endpoints[0].ID, e.admin, nil), 404, string(config.CodeAPINotFound))

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
