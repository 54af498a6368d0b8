package edge

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// TestAuthWaitsForFreshCredential: an authtoken created a moment before the
// agent connects, and not yet in the edge's snapshot, is accepted once the
// next snapshot brings it; one that never arrives is refused with TG_107.
func TestAuthWaitsForFreshCredential(t *testing.T) {
	base := snapshot.Data{
		Accounts:   []snapshot.Account{{ID: "acct_a", Active: true}},
		Principals: []snapshot.Principal{{ID: "usr_a", Active: true, AccountIDs: []string{"acct_a"}}},
	}
	e := newPolicyEdge(t, base)
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.closeListeners)
	id, tok, hash := authn.NewCredential(ids.PrefixAuthtoken)
	auth := func(token string) <-chan *tunnel.AuthResp {
		out := make(chan *tunnel.AuthResp, 1)
		s := newAgentSession(e, net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:5000")), "tcp")
		go func() {
			out <- s.Auth(context.Background(), &tunnel.Auth{Version: []string{"3"}, Extra: tunnel.AuthExtra{Authtoken: tunnel.Secret(token)}})
		}()
		return out
	}
	pending := auth(tok.Reveal())
	time.Sleep(100 * time.Millisecond) // the Auth is waiting: the snapshot lacks the token
	select {
	case r := <-pending:
		t.Fatalf("Auth answered before the credential arrived: %+v", r)
	default:
	}
	with := base
	with.Authtokens = []snapshot.Authtoken{{ID: id, AccountID: "acct_a", OwnerID: "usr_a", SecretHash: hash}}
	setSnapshot(t, e, with)
	e.snap.notify()
	select {
	case r := <-pending:
		if r.Error != "" {
			t.Fatalf("fresh credential refused: %s", r.Error)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Auth did not answer after the snapshot arrived")
	}

	_, never, _ := authn.NewCredential(ids.PrefixAuthtoken)
	select {
	case r := <-auth(never.Reveal()):
		if !strings.Contains(r.Error, string(codes.AuthtokenInvalid)) {
			t.Fatalf("unknown authtoken: %q, want %s", r.Error, codes.AuthtokenInvalid)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Auth of an unknown authtoken never answered")
	}
}

// TestAuthBeforeFirstSnapshot: an edge that holds no snapshot yet (none
// from the control plane, none persisted) refuses an authtoken with the
// retryable TG_2740, not with TG_107, which agents take as permanent; once
// a snapshot arrives the same token is refused with TG_107 or accepted.
func TestAuthBeforeFirstSnapshot(t *testing.T) {
	e, err := New(Config{BaseDomain: "tollgate.localhost", DisableQUIC: true, AgentAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", HTTPAddr: "off"},
		Deps{AgentTLS: &tls.Config{}, Certs: noCerts{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.closeListeners)
	id, tok, hash := authn.NewCredential(ids.PrefixAuthtoken)
	auth := func() string {
		s := newAgentSession(e, net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:5000")), "tcp")
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond) // the agent's wait, cut short
		defer cancel()
		return s.Auth(ctx, &tunnel.Auth{Version: []string{"3"}, Extra: tunnel.AuthExtra{Authtoken: tunnel.Secret(tok.Reveal())}}).Error
	}
	got := auth()
	re := tunnel.ParseRemoteError(got)
	if re.Code != string(codes.EdgeNotReady) {
		t.Fatalf("before the first snapshot: %q, want %s", got, codes.EdgeNotReady)
	}
	if re.Permanent() || tunnel.IsPermanent(re) {
		t.Fatalf("%s is permanent: agents would exit instead of retrying", codes.EdgeNotReady)
	}

	data := snapshot.Data{
		Accounts:   []snapshot.Account{{ID: "acct_a", Active: true}},
		Principals: []snapshot.Principal{{ID: "usr_a", Active: true, AccountIDs: []string{"acct_a"}}},
	}
	setSnapshot(t, e, data)
	if got := auth(); !strings.Contains(got, string(codes.AuthtokenInvalid)) {
		t.Fatalf("with a snapshot that lacks the token: %q, want %s", got, codes.AuthtokenInvalid)
	}
	data.Authtokens = []snapshot.Authtoken{{ID: id, AccountID: "acct_a", OwnerID: "usr_a", SecretHash: hash}}
	setSnapshot(t, e, data)
	if got := auth(); got != "" {
		t.Fatalf("with the token in the snapshot: %q", got)
	}
}
