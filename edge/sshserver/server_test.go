package sshserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge"
)

type noCerts struct{}

func (noCerts) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return nil, errors.New("no certificates in this test")
}

// TestSSHIngressAlgorithms runs the edge's SSH ingress and checks with the
// x/crypto client: a registered key gets in; SHA-1 MACs, SHA-1 key
// exchange and ssh-rsa (SHA-1) signatures are refused; an unknown key is
// refused.
func TestSSHIngressAlgorithms(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	sp, _ := ssh.NewPublicKey(pub)
	te := startSSHTestEdge(t, sp, edge.GuardConfig{}, false)
	e, hostKey, snap, addr := te.edge, te.hostKey, te.snap, te.addr
	// Before the first snapshot a key is neither known nor unknown: the
	// client is told the edge is not ready yet (TG_2740), not that its key
	// is unknown.
	var banner string
	_, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "x", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()), Timeout: 5 * time.Second,
		BannerCallback: func(m string) error { banner += m; return nil }})
	if err == nil || !strings.Contains(banner, string(codes.EdgeNotReady)) {
		t.Fatalf("before the first snapshot: dial %v, banner %q; want a refusal with %s", err, banner, codes.EdgeNotReady)
	}
	e.ApplySnapshot(snap)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(other)
	cases := []struct {
		name   string
		mod    func(*ssh.ClientConfig)
		signer ssh.Signer
		ok     bool
	}{
		{"modern", func(*ssh.ClientConfig) {}, signer, true},
		// An AEAD cipher needs no MAC; with CTR the MAC is negotiated.
		{"sha1 mac", func(c *ssh.ClientConfig) {
			c.Ciphers, c.MACs = []string{ssh.CipherAES128CTR}, []string{ssh.HMACSHA1}
		}, signer, false},
		{"sha2 mac", func(c *ssh.ClientConfig) {
			c.Ciphers, c.MACs = []string{ssh.CipherAES128CTR}, []string{ssh.HMACSHA256ETM}
		}, signer, true},
		{"sha1 kex", func(c *ssh.ClientConfig) { c.KeyExchanges = []string{ssh.InsecureKeyExchangeDH14SHA1} }, signer, false},
		{"unknown key", func(*ssh.ClientConfig) {}, otherSigner, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &ssh.ClientConfig{User: "x", Auth: []ssh.AuthMethod{ssh.PublicKeys(tc.signer)},
				HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()), Timeout: 5 * time.Second}
			tc.mod(cfg)
			c, err := ssh.Dial("tcp", addr, cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("dial: %v, want ok=%v", err, tc.ok)
			}
			if c != nil {
				c.Close()
			}
		})
	}
	if fp := te.srv.HostKeyFingerprint(); !strings.HasPrefix(fp, "SHA256:") {
		t.Fatalf("host key fingerprint %q", fp)
	}
}
