package test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSSHWildcardBind: with the real OpenSSH client, `ssh -R
// '*.ci.tollgate.localhost:443:…' http` binds the wildcard endpoint when
// the account reserved *.ci.tollgate.localhost and the key's bind ACL
// allows it (docs/wildcard-endpoints.md#binding), and serves every name one
// label under it over HTTP/1.1 and HTTP/2, while a name bound exactly by
// another SSH session wins over the wildcard. A key whose ACL names only
// app.ci.tollgate.localhost is refused the wildcard (TG_619); a wildcard
// the account has not reserved is refused (TG_407). Before, the SSH
// ingress refused every wildcard bind name (TG_401).
func TestSSHWildcardBind(t *testing.T) {
	requireSSH(t)
	dev := startDev(t, "")
	env := []string{"TOLLGATE_API_KEY=" + dev.info.APIKey, "TOLLGATE_API_URL=" + dev.info.APIURL}
	apiCLIJSON(t, env, "reserved-domains", "create", "--domain", "*.ci.tollgate.localhost")

	upstream := func(who string) string {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s for %s", who, r.Host)
		}))
		t.Cleanup(up.Close)
		return upstreamPort(up)
	}
	wildKey, appKey := newSSHKey(t), newSSHKey(t)
	dev.addSSHCredential(t, wildKey, []string{"bind:*.ci.tollgate.localhost", "bind:*.qa.tollgate.localhost"})
	dev.addSSHCredential(t, appKey, []string{"bind:app.ci.tollgate.localhost"})

	_, u := dev.sshForwarding(t, wildKey, "*.ci.tollgate.localhost:443:localhost:"+upstream("wildcard"), "http")
	if want := "https://*.ci.tollgate.localhost:" + dev.httpsPort(); u != want {
		t.Fatalf("URL %q, want %q", u, want)
	}
	// app.ci.tollgate.localhost is covered by the wildcard reservation; its
	// exact endpoint wins over the wildcard.
	_, au := dev.sshForwarding(t, appKey, "app.ci.tollgate.localhost:443:localhost:"+upstream("exact"), "http")
	if want := "https://app.ci.tollgate.localhost:" + dev.httpsPort(); au != want {
		t.Fatalf("URL %q, want %q", au, want)
	}
	for _, tc := range []struct{ name, want string }{
		{"pr-7.ci.tollgate.localhost", "wildcard"},
		{"app.ci.tollgate.localhost", "exact"},
	} {
		host := tc.name + ":" + dev.httpsPort()
		for _, h2 := range []bool{false, true} {
			resp, err := dev.client(h2).Get("https://" + host + "/")
			if err != nil {
				t.Fatalf("%s h2=%v: %v", tc.name, h2, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := tc.want + " for " + host; resp.StatusCode != http.StatusOK || string(body) != want {
				t.Fatalf("%s h2=%v: %d %q, want %q", tc.name, h2, resp.StatusCode, body, want)
			}
		}
	}

	// Both keys have reached the edge (they bound above): the refusals are
	// the edge's bind rules, not an unknown key.
	for _, tc := range []struct {
		name    string
		key     sshKey
		forward string
		want    string
	}{
		{"ACL names one host only", appKey, "*.ci.tollgate.localhost:443:localhost:1", "TG_619"},
		{"wildcard not reserved", wildKey, "*.qa.tollgate.localhost:443:localhost:1", "TG_407"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dev.runSSH(t, tc.key, tc.forward, "http")
			code, exited := p.wait(20 * time.Second)
			if !exited || code == 0 || !strings.Contains(p.output(), tc.want) {
				t.Fatalf("exited %v with %d, want %s:\n%s", exited, code, tc.want, p.output())
			}
		})
	}
}
