package edge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// connectAgent connects a real tunnel client session to e over a loopback
// TCP connection (muxado, no TLS) and authenticates it with token. It
// returns the client session and a channel that receives how it ended.
func connectAgent(t testing.TB, e *Edge, token string) (*tunnel.ClientSession, <-chan error) {
	t.Helper()
	cc, sc := tcpPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.startAgentSession(ctx, tunnel.NewMuxadoMux(sc, true, tunnel.MuxConfig{}))
	cs := tunnel.NewClientSession(tunnel.NewMuxadoMux(cc, false, tunnel.MuxConfig{}), tunnel.ClientConfig{})
	ended := make(chan error, 1)
	if err := cs.Start(ctx, func(err error) { ended <- err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	resp, err := cs.Auth(ctx, &tunnel.Auth{Version: []string{"3"}, Extra: tunnel.AuthExtra{Authtoken: tunnel.Secret(token)}})
	if err != nil {
		t.Fatalf("auth: %v", err)
	}
	if resp.Error != "" {
		t.Fatalf("auth refused: %s", resp.Error)
	}
	return cs, ended
}

// TestAgentIPRestrictionClosesLiveSessions: an agent IP restriction that
// arrives in a snapshot closes the live agent sessions from addresses it
// refuses, with TG_115, and leaves the allowed ones and other accounts'
// sessions alone; an unenforced (dry-run) one closes nothing.
func TestAgentIPRestrictionClosesLiveSessions(t *testing.T) {
	idA, tokA, hashA := authn.NewCredential(ids.PrefixAuthtoken)
	idB, tokB, hashB := authn.NewCredential(ids.PrefixAuthtoken)
	data := snapshot.Data{
		Accounts: []snapshot.Account{{ID: "acct_a", Active: true}, {ID: "acct_b", Active: true}},
		Principals: []snapshot.Principal{
			{ID: "usr_a", Active: true, AccountIDs: []string{"acct_a"}},
			{ID: "usr_b", Active: true, AccountIDs: []string{"acct_b"}},
		},
		Authtokens: []snapshot.Authtoken{
			{ID: idA, AccountID: "acct_a", OwnerID: "usr_a", SecretHash: hashA},
			{ID: idB, AccountID: "acct_b", OwnerID: "usr_b", SecretHash: hashB},
		},
	}
	e := newPolicyEdge(t, data)
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.closeListeners)
	_, endedA := connectAgent(t, e, tokA.Reveal())
	_, endedB := connectAgent(t, e, tokB.Reveal())

	// acct_a's restriction allows only 10.0.0.0/8, as a dry run first.
	data.IPPolicies = []snapshot.IPPolicy{testPolicy("ipp_a", "acct_a", "allow 10.0.0.0/8")}
	data.IPRestrictions = []snapshot.IPRestriction{{ID: "ipx_a", AccountID: "acct_a", Type: "agent", Enforced: false, IPPolicyIDs: []string{"ipp_a"}}}
	setSnapshot(t, e, data)
	data.IPRestrictions[0].Enforced = true
	setSnapshot(t, e, data)

	select {
	case err := <-endedA:
		var re *tunnel.RemoteError
		if !strings.Contains(err.Error(), string(codes.AgentIPRestricted)) {
			t.Fatalf("acct_a's session ended with %v, want %s", err, codes.AgentIPRestricted)
		}
		if errors.As(err, &re) && !re.Permanent() {
			t.Errorf("%s is not permanent for the agent", codes.AgentIPRestricted)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acct_a's session from 127.0.0.1 is still open after its agent IP restriction refused that address")
	}
	select {
	case err := <-endedB:
		t.Fatalf("acct_b's session (no restriction) ended: %v", err)
	default:
	}
	if n := e.Metrics().AgentIPClosed(); n != 1 {
		t.Errorf("AgentIPClosed = %d, want 1", n)
	}

	// Allowing 127.0.0.0/8 keeps a new session open across snapshots.
	data.IPPolicies = []snapshot.IPPolicy{testPolicy("ipp_a", "acct_a", "allow 127.0.0.0/8")}
	setSnapshot(t, e, data)
	_, endedA2 := connectAgent(t, e, tokA.Reveal())
	setSnapshot(t, e, data)
	select {
	case err := <-endedA2:
		t.Fatalf("allowed session ended: %v", err)
	default:
	}
}
