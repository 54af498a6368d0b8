package sshserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tollgate/tollgate/edge"
)

// TestSSHStopsAcceptingWhenEdgeDrains: the SSH listener closes when the
// edge's Shutdown begins, before SSH's own Shutdown: a new SSH connection
// is refused at once, while a session opened before goes on until the SSH
// ingress shuts down and closes it with a message.
func TestSSHStopsAcceptingWhenEdgeDrains(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	sp, _ := ssh.NewPublicKey(pub)
	te := startSSHTestEdge(t, sp, edge.GuardConfig{}, false)
	e, srv, hostKey, addr, sshDone := te.edge, te.srv, te.hostKey, te.addr, te.sshDone
	e.ApplySnapshot(te.snap)
	cfg := &ssh.ClientConfig{User: "tunnel", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()), Timeout: 5 * time.Second}
	var open *ssh.Client
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for open == nil {
		if open, err = ssh.Dial("tcp", addr, cfg); err != nil && time.Now().After(deadline) {
			t.Fatalf("ssh before the drain: %v", err)
		}
	}
	defer open.Close()
	// A reply means the server serves the session (a connection whose
	// handshake ends after the drain began is refused).
	if _, _, err := open.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Fatalf("the SSH session before the drain: %v", err)
	}

	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := e.Shutdown(sctx); err != nil {
		t.Fatalf("edge shutdown: %v", err)
	}
	// The listener closes as the drain begins (on its own goroutine, a
	// moment after Draining closes): a connection is then refused by the
	// kernel, never accepted.
	refused := false
	for i := 0; i < 200 && !refused; i++ {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			refused = errors.Is(err, syscall.ECONNREFUSED)
			if !refused {
				t.Fatalf("dial during the drain: %v", err)
			}
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if !refused {
		t.Fatal("the SSH listener still accepts connections after the edge's drain began")
	}
	// The session opened before is served until SSH's own Shutdown.
	if _, _, err := open.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Fatalf("the open SSH session was closed by the edge's drain: %v", err)
	}
	select {
	case err := <-sshDone:
		t.Fatalf("Serve returned (%v) before Shutdown", err)
	default:
	}
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("SSH shutdown: %v", err)
	}
	if err := <-sshDone; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- open.Wait() }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the SSH session outlived the ingress's Shutdown")
	}
}
