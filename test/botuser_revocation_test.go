package test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// agentWithToken runs `tollgate` against the dev server with authtoken and
// waits for its Forwarding line; it returns the process and the public URL.
func agentWithToken(t *testing.T, d *devServer, authtoken string, args ...string) (*proc, string) {
	t.Helper()
	full := append(append([]string{}, args...), "--authtoken", authtoken, "--server-addr", d.info.AgentAddr,
		"--root-ca", d.info.CAFile, "--web-addr", "127.0.0.1:0")
	p := start(t, bins.tollgate, []string{"TOLLGATE_CONFIG=" + filepath.Join(t.TempDir(), "tollgate.yml")}, full...)
	m := p.waitFor(regexp.MustCompile(`Forwarding\s+(\S+)\s+->`), 30*time.Second)
	return p, m[1]
}

// wantAPIError checks an error answer's status and code.
func wantAPIError(t *testing.T, d *devServer, key, method, path string, status int, code string) {
	t.Helper()
	got, m := callAPI(t, d, key, method, path, nil)
	if got != status || m["error_code"] != code || m["msg"] == "" {
		t.Fatalf("%s %s: %d %v, want %d %s", method, path, got, m, status, code)
	}
}

// TestBotUserRevocation is the bot-user lifecycle end to end (seed 003): a
// bot's API key and authtoken work; deactivating the bot refuses its key
// with a code and closes its agent session with a reason the agent prints;
// reactivating restores the key; deleting the bot deletes its credentials.
func TestBotUserRevocation(t *testing.T) {
	dev := startDev(t, "")
	admin := dev.info.APIKey

	bot := mustAPI(t, dev, admin, "POST", "/bot_users", map[string]any{"name": "deployer"}, 201)
	botID, _ := bot["id"].(string)
	if !strings.HasPrefix(botID, "bot_") || bot["active"] != true {
		t.Fatalf("bot = %v", bot)
	}
	key := mustAPI(t, dev, admin, "POST", "/api_keys", map[string]any{"owner_id": botID, "description": "deployer key"}, 201)
	botKey, keyID := key["token"].(string), key["id"].(string)
	if key["owner_id"] != botID || botKey == "" {
		t.Fatalf("key = %v", key)
	}
	if got := mustAPI(t, dev, botKey, "GET", "/api_keys/"+keyID, nil, 200); got["owner_id"] != botID {
		t.Fatalf("the bot reads its key: %v", got)
	}
	cred := mustAPI(t, dev, admin, "POST", "/credentials", map[string]any{"owner_id": botID, "description": "deployer agent"}, 201)
	credID, authtoken := cred["id"].(string), cred["token"].(string)
	if cred["owner_id"] != botID || authtoken == "" {
		t.Fatalf("credential = %v", cred)
	}

	up := echoUpstream(t)
	agent, url := agentWithToken(t, dev, authtoken, "http", upstreamPort(up))
	c := dev.client(false)
	if err := getOK(c, url+"/hello"); err != nil {
		t.Fatalf("through the bot's agent: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		if ids := onlineSessions(t, dev, admin); len(ids) != 1 {
			return fmt.Errorf("sessions %v", ids)
		}
		return nil
	})

	// Deactivate: the key is refused with a code; the agent's session is
	// closed with a reason the agent shows; the endpoint goes.
	upd := mustAPI(t, dev, admin, "PATCH", "/bot_users/"+botID, map[string]any{"active": false}, 200)
	if upd["active"] != false {
		t.Fatalf("deactivated bot = %v", upd)
	}
	wantAPIError(t, dev, botKey, "GET", "/api_keys/"+keyID, 403, "TG_2603")
	agent.waitFor(regexp.MustCompile(`TG_300`), 10*time.Second)
	if !strings.Contains(agent.output(), "deactivated") {
		t.Fatalf("the agent does not say why its session closed:\n%s", agent.output())
	}
	eventually(t, 10*time.Second, func() error {
		if err := getOK(c, url+"/hello"); err == nil {
			return fmt.Errorf("%s still serves", url)
		}
		if ids := onlineSessions(t, dev, admin); len(ids) != 0 {
			return fmt.Errorf("sessions still online: %v", ids)
		}
		return nil
	})
	// A revoked authtoken is a permanent error: the agent gives up rather
	// than retry forever, and says so.
	if code, exited := agent.wait(30 * time.Second); !exited || code == 0 {
		t.Fatalf("agent after revocation: exited %v, code %d:\n%s", exited, code, agent.output())
	}

	// Reactivate: the key works again, and so does the authtoken.
	mustAPI(t, dev, admin, "PATCH", "/bot_users/"+botID, map[string]any{"active": true}, 200)
	mustAPI(t, dev, botKey, "GET", "/api_keys/"+keyID, nil, 200)
	_, url2 := agentWithToken(t, dev, authtoken, "http", upstreamPort(up))
	if err := getOK(c, url2+"/hello"); err != nil {
		t.Fatalf("through the reactivated bot's agent: %v", err)
	}

	// Delete: its keys and authtokens are gone.
	mustAPI(t, dev, admin, "DELETE", "/bot_users/"+botID, nil, 204)
	wantAPIError(t, dev, botKey, "GET", "/api_keys", 401, "TG_203")
	wantAPIError(t, dev, admin, "GET", "/credentials/"+credID, 404, "TG_250")
	wantAPIError(t, dev, admin, "GET", "/api_keys/"+keyID, 404, "TG_250")
	wantAPIError(t, dev, admin, "GET", "/bot_users/"+botID, 404, "TG_250")
	eventually(t, 10*time.Second, func() error {
		if err := getOK(c, url2+"/hello"); err == nil {
			return fmt.Errorf("%s still serves after the bot was deleted", url2)
		}
		return nil
	})
}
