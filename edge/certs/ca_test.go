package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
)

func TestLoadOrCreateCACreatesAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	ca := newTestCA(t, dir)

	cert := ca.Certificate()
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("not a signing CA: IsCA=%v usage=%v", cert.IsCA, cert.KeyUsage)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key = %T, want ECDSA P-256", cert.PublicKey)
	}
	host, _ := os.Hostname()
	if cn := cert.Subject.CommonName; !strings.HasPrefix(cn, "Tollgate Dev CA ") || (host != "" && !strings.Contains(cn, host[:min(len(host), 32)])) {
		t.Errorf("CN = %q, want Tollgate Dev CA <hostname> <random>", cn)
	}
	if len(strings.Fields(cert.Subject.CommonName)) < 5 {
		t.Errorf("CN %q has no random suffix", cert.Subject.CommonName)
	}
	if life := cert.NotAfter.Sub(cert.NotBefore); life < (10*365-1)*24*time.Hour || life > (10*366+1)*24*time.Hour {
		t.Errorf("validity = %v, want 10 years", life)
	}
	if err := verifySelfSigned(cert); err != nil {
		t.Errorf("root does not verify against itself: %v", err)
	}

	abs, _ := filepath.Abs(filepath.Join(dir, CACertFile))
	if ca.CertFile() != abs {
		t.Errorf("CertFile = %q, want %q", ca.CertFile(), abs)
	}
	for file, want := range map[string]os.FileMode{CACertFile: 0o644, CAKeyFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v, want %v", file, got, want)
		}
	}
	fileCert, err := os.ReadFile(ca.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileCert, ca.CertPEM()) {
		t.Error("CertFile content differs from CertPEM")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	again := newTestCA(t, dir)
	if !again.Certificate().Equal(cert) {
		t.Error("second LoadOrCreateCA made a new CA instead of reusing the first")
	}
	if again.Name() != ca.Name() {
		t.Errorf("name changed: %q → %q", ca.Name(), again.Name())
	}
	if !again.key.Equal(ca.key) {
		t.Error("key changed")
	}
}

func TestLoadOrCreateCADistinctNames(t *testing.T) {
	a := newTestCA(t, t.TempDir())
	b := newTestCA(t, t.TempDir())
	if a.Name() == b.Name() {
		t.Errorf("two CAs share the name %q", a.Name())
	}
}

func TestLoadOrCreateCAAcceptsSEC1Key(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	der, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if got := newTestCA(t, dir); !got.Certificate().Equal(ca.Certificate()) {
		t.Error("SEC 1 key not accepted")
	}
}

func TestLoadOrCreateCAUnusable(t *testing.T) {
	other := newTestCA(t, t.TempDir())
	otherKey, err := os.ReadFile(filepath.Join(filepath.Dir(other.CertFile()), CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := issueLeafPEM(t, other)
	edKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8Ed25519(t)})

	tests := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   string // in the message
	}{
		{"garbage cert", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, CACertFile), []byte("not a certificate\n"))
		}, "no PEM certificate"},
		{"truncated cert", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, CACertFile))
			lines := strings.Split(string(b), "\n")
			lines = append(lines[:3], lines[len(lines)-2:]...) // keep BEGIN/END, drop the middle
			writeFile(t, filepath.Join(dir, CACertFile), []byte(strings.Join(lines, "\n")))
		}, "ca.pem"},
		{"garbage key", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, CAKeyFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
		}, "ca-key.pem"},
		{"empty key", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, CAKeyFile), nil)
		}, "no PEM private key"},
		{"key of another CA", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, CAKeyFile), otherKey)
		}, "is not the key of"},
		{"non-ECDSA key", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, CAKeyFile), edKey)
		}, "want an ECDSA key"},
		{"leaf instead of CA", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, CACertFile), leafPEM)
		}, "not a CA certificate"},
		{"cert missing", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, CACertFile)))
		}, "ca.pem is missing"},
		{"key missing", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, CAKeyFile)))
		}, "ca-key.pem is missing"},
		{"cert is a directory", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, CACertFile)))
			must(t, os.Mkdir(filepath.Join(dir, CACertFile), 0o700))
		}, "cannot read ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			newTestCA(t, dir)
			tt.mutate(t, dir)
			mutated := snapshotDir(t, dir)

			ca, err := LoadOrCreateCA(dir)
			if err == nil {
				t.Fatalf("LoadOrCreateCA succeeded (CA %q), want an error", ca.Name())
			}
			var ce *codes.Error
			if !errors.As(err, &ce) || ce.Code != codes.CAUnreadable {
				t.Fatalf("error = %v (%T), want *codes.Error %s", err, err, codes.CAUnreadable)
			}
			if ce.Cause == nil {
				t.Error("no cause for the logs")
			}
			msg := err.Error()
			for _, s := range []string{tt.want, dir, "delete"} {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not mention %q", msg, s)
				}
			}
			if got := snapshotDir(t, dir); got != mutated {
				t.Errorf("LoadOrCreateCA changed the directory:\nbefore %s\nafter  %s", mutated, got)
			}
		})
	}
}

func TestLoadOrCreateCAExpired(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	tmpl := *ca.cert
	tmpl.NotBefore = time.Now().Add(-48 * time.Hour)
	tmpl.NotAfter = time.Now().Add(-24 * time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &ca.key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, CACertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	_, err = LoadOrCreateCA(dir)
	var ce *codes.Error
	if !errors.As(err, &ce) || ce.Code != codes.CAUnreadable || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("error = %v, want %s about expiry", err, codes.CAUnreadable)
	}
}

// TestLoadOrCreateCAUnwritableDir uses a path below a regular file, which
// no user (root included) can create a directory in.
func TestLoadOrCreateCAUnwritableDir(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "a-file")
	writeFile(t, parent, []byte("not a directory"))
	if _, err := LoadOrCreateCA(filepath.Join(parent, "ca")); err == nil {
		t.Fatal("created a CA below a regular file")
	}
}

// FuzzParseCA feeds arbitrary PEM to the CA decoder: it must never panic,
// and anything it accepts must be a signing CA whose key matches.
func FuzzParseCA(f *testing.F) {
	dir := f.TempDir()
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		f.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ca.CertPEM(), keyPEM)
	f.Add(ca.CertPEM(), []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), keyPEM)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		cert, key, err := parseCA(certPEM, keyPEM)
		if err != nil {
			if cert != nil || key != nil {
				t.Fatal("values returned with an error")
			}
			return
		}
		if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 || !key.PublicKey.Equal(cert.PublicKey) {
			t.Fatalf("accepted an unusable CA")
		}
	})
}

func verifySelfSigned(c *x509.Certificate) error {
	p := x509.NewCertPool()
	p.AddCert(c)
	_, err := c.Verify(x509.VerifyOptions{Roots: p})
	return err
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	must(t, os.WriteFile(path, b, 0o600))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// snapshotDir renders the names, sizes and modes of dir's entries.
func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		content, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&b, "%s:%v:%x; ", e.Name(), fi.Mode(), sha256.Sum256(content))
	}
	return b.String()
}
