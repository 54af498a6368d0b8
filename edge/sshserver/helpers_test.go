package sshserver

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/snapshot"
)

// sshTestEdge is an edge (agents on TCP only, no plain-HTTP listener) with
// the SSH ingress serving on a loopback port, for tests. Its snapshot is
// built but not applied: tests apply snap when they want the edge ready.
type sshTestEdge struct {
	edge    *edge.Edge
	srv     *Server
	addr    string     // the SSH listener's address
	hostKey ssh.Signer // the ingress's host key
	snap    *snapshot.Snapshot
	sshDone chan error // Serve's result
}

// startSSHTestEdge starts an edge with guard and its SSH ingress. snap
// holds account acct_a with user usr_a, whose SSH key is sp. With
// throttle the ingress throttles failed logins through the edge's guard.
// Everything stops at the end of the test.
func startSSHTestEdge(t *testing.T, sp ssh.PublicKey, guard edge.GuardConfig, throttle bool) *sshTestEdge {
	t.Helper()
	snap, err := snapshot.New(snapshot.Data{
		Revision:   1,
		Accounts:   []snapshot.Account{{ID: "acct_a", Active: true}},
		Principals: []snapshot.Principal{{ID: "usr_a", Active: true, AccountIDs: []string{"acct_a"}}},
		SSHCredentials: []snapshot.SSHCredential{{ID: "sshcr_a", AccountID: "acct_a", OwnerID: "usr_a",
			Fingerprint: ssh.FingerprintSHA256(sp), PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := edge.New(edge.Config{BaseDomain: "tollgate.localhost", AgentAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", HTTPAddr: "off",
		DisableQUIC: true, Guard: guard}, edge.Deps{AgentTLS: &tls.Config{}, Certs: noCerts{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	hostKey, err := LoadHostKey("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{HostKey: hostKey}
	if throttle {
		cfg.Throttle = e.SSHLoginThrottle()
	}
	srv, err := New(cfg, e)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	te := &sshTestEdge{edge: e, srv: srv, addr: ln.Addr().String(), hostKey: hostKey, snap: snap, sshDone: make(chan error, 1)}
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	go func() { te.sshDone <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
	})
	return te
}
