package sshserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/edge/limits"
)

// keyFile writes a fresh Ed25519 key for the OpenSSH client and returns
// its path and authorized_keys line.
func keyFile(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, _ := ssh.NewPublicKey(pub)
	return file, sp
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// startOpenSSHEdge runs an edge and its SSH ingress with the edge's login
// throttle (budget policy, clock clk) and a snapshot holding the key sp;
// it returns the SSH address.
func startOpenSSHEdge(t *testing.T, sp ssh.PublicKey, policy limits.Policy, clk *clock) string {
	t.Helper()
	if _, err := exec.LookPath("/usr/bin/ssh"); err != nil {
		t.Fatal("this test needs the OpenSSH client at /usr/bin/ssh: apt-get install openssh-client")
	}
	te := startSSHTestEdge(t, sp, edge.GuardConfig{SSHAuth: policy, Now: clk.Now}, true)
	e, snap := te.edge, te.snap
	e.ApplySnapshot(snap)
	deadline := time.Now().Add(10 * time.Second)
	for e.Snapshot().Revision() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("snapshot not applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return te.addr
}

// openssh runs `ssh ... tunnel@127.0.0.1 help` from source address src
// with key and extra options, and returns its output and whether it
// exited 0.
func openssh(t *testing.T, addr, src, key string, opts ...string) (string, bool) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	args := []string{"-p", port, "-b", src, "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-F", "/dev/null"}
	args = append(args, opts...)
	args = append(args, "tunnel@127.0.0.1", "help")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/ssh", args...).CombinedOutput()
	return string(out), err == nil
}

// TestOpenSSHAlgorithms: with the real OpenSSH client, a client offering
// only a NIST ECDH key exchange, or only a non-EtM MAC, fails; the default
// client connects and strict kex (Terrapin) is negotiated.
func TestOpenSSHAlgorithms(t *testing.T) {
	key, sp := keyFile(t)
	addr := startOpenSSHEdge(t, sp, limits.Policy{Burst: 100, Every: time.Second}, &clock{now: time.Now()})
	for _, tc := range []struct {
		name string
		opts []string
		ok   bool
		want string
	}{
		{"default", nil, true, "Usage: ssh -R"},
		{"nistp256 kex only", []string{"-o", "KexAlgorithms=ecdh-sha2-nistp256"}, false, "no matching key exchange"},
		{"nistp384 kex only", []string{"-o", "KexAlgorithms=ecdh-sha2-nistp384"}, false, "no matching key exchange"},
		{"hmac-sha2-256 (non-EtM) only", []string{"-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha2-256"}, false, "no matching MAC"},
		{"hmac-sha2-512 (non-EtM) only", []string{"-o", "Ciphers=aes256-ctr", "-o", "MACs=hmac-sha2-512"}, false, "no matching MAC"},
		{"EtM MAC", []string{"-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha2-256-etm@openssh.com"}, true, "Usage: ssh -R"},
		{"strict kex", []string{"-vvv"}, true, "will use strict KEX ordering"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, ok := openssh(t, addr, "127.0.0.1", key, tc.opts...)
			if ok != tc.ok || !strings.Contains(out, tc.want) {
				t.Fatalf("ssh exited ok=%v, want %v with %q:\n%s", ok, tc.ok, tc.want, out)
			}
		})
	}
}

// TestOpenSSHLoginThrottle: failed logins (unknown keys) from one address
// past the budget make its next login — even with a registered key — fail
// with a TG_3241 banner; the registered key from another address gets in
// at once; one refill period later it gets in from the first address too.
func TestOpenSSHLoginThrottle(t *testing.T) {
	key, sp := keyFile(t)
	unknown, _ := keyFile(t)
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	addr := startOpenSSHEdge(t, sp, limits.Policy{Burst: 2, Every: time.Minute}, clk)
	for i := 0; i < 2; i++ {
		if out, ok := openssh(t, addr, "127.0.0.2", unknown); ok || !strings.Contains(out, "Permission denied") {
			t.Fatalf("unknown key %d: ok=%v\n%s", i, ok, out)
		}
	}
	out, ok := openssh(t, addr, "127.0.0.2", key)
	if ok || !strings.Contains(out, "TG_3241") || !strings.Contains(out, "Retry in 60 seconds") {
		t.Fatalf("registered key from the throttled address: ok=%v, want a TG_3241 banner:\n%s", ok, out)
	}
	if out, ok := openssh(t, addr, "127.0.0.3", key); !ok || !strings.Contains(out, "Usage: ssh -R") {
		t.Fatalf("registered key from another address: ok=%v\n%s", ok, out)
	}
	clk.Add(time.Minute)
	if out, ok := openssh(t, addr, "127.0.0.2", key); !ok || !strings.Contains(out, "Usage: ssh -R") {
		t.Fatalf("registered key one period later: ok=%v\n%s", ok, out)
	}
}
