package test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testcert"
)

// writeKeyPair writes a certificate for name and its key as PEM files.
func writeKeyPair(t *testing.T, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	p := testcert.New(name)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, p.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, p.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, p.Pool
}

// TestTLSTerminatedAtEdge: a tls endpoint bound with --crt/--key is
// terminated by the edge with that key pair, and a plain-TCP upstream
// receives the decrypted bytes; a certificate for another name is refused
// at bind.
func TestTLSTerminatedAtEdge(t *testing.T) {
	dev := startDev(t, "")
	name := "term." + dev.info.BaseDomain
	certFile, keyFile, pool := writeKeyPair(t, name)
	up := startTCPEcho(t, false) // plain TCP: it would echo TLS records back if the edge passed them through
	_, u := dev.agent(t, "tls", up.port(), "--url", "tls://"+name, "--crt", certFile, "--key", keyFile)
	if !strings.HasPrefix(u, "tls://"+name) {
		t.Fatalf("URL %q", u)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", dev.info.HTTPSAddr,
		&tls.Config{ServerName: name, RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to the terminated endpoint (verifying the agent's certificate): %v", err)
	}
	defer c.Close()
	msg := []byte("decrypted at the edge\n")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != string(msg) {
		t.Fatalf("echo through the terminated endpoint: %q %v", buf, err)
	}

	// A key pair for another name: refused with the reason.
	oc, ok, _ := writeKeyPair(t, "other.example.com")
	p := dev.startAgent(t, "tls", up.port(), "--url", "tls://wrong."+dev.info.BaseDomain, "--crt", oc, "--key", ok)
	p.waitFor(regexp.MustCompile(`not valid for wrong\..*TG_403`), 30*time.Second)
}
