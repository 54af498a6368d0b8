package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

func newCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func p256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func parseLeafPEM(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("issued PEM has no certificate: %q", b)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("issued PEM has trailing data: %q", rest)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// issueLeafPEM returns a leaf signed by ca, for tests that need a non-CA
// certificate.
func issueLeafPEM(t *testing.T, ca *CA) []byte {
	t.Helper()
	li, err := NewLocalIssuer(ca, LocalIssuerConfig{BaseDomain: "leaf.test"})
	if err != nil {
		t.Fatal(err)
	}
	ic, err := li.Issue(context.Background(), newCSR(t, p256(t), &x509.CertificateRequest{DNSNames: []string{"leaf.test"}}))
	if err != nil {
		t.Fatal(err)
	}
	return ic.Certificate
}

func mustPKCS8Ed25519(t *testing.T) []byte {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestLocalIssuerIssues(t *testing.T) {
	ca := newTestCA(t, t.TempDir())
	li, err := NewLocalIssuer(ca, LocalIssuerConfig{BaseDomain: "Dev.Example.TEST."})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(li.IssuerKey(), "tollgate-local-") {
		t.Errorf("IssuerKey = %q", li.IssuerKey())
	}
	tests := [][]string{
		{"dev.example.test"},
		{"*.dev.example.test"},
		{"*.dev.example.test", "dev.example.test"},
		{"app.dev.example.test"},
		{"xn--bcher-kva.dev.example.test"},
		{"App.Dev.Example.Test"},
	}
	for _, names := range tests {
		t.Run(strings.Join(names, ","), func(t *testing.T) {
			before := time.Now()
			csr := newCSR(t, p256(t), &x509.CertificateRequest{DNSNames: names})
			if err := li.PreCheck(context.Background(), names, true); err != nil {
				t.Fatalf("PreCheck: %v", err)
			}
			ic, err := li.Issue(context.Background(), csr)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			leaf := parseLeafPEM(t, ic.Certificate)
			if !slices.Equal(leaf.DNSNames, names) {
				t.Errorf("DNSNames = %v, want exactly %v", leaf.DNSNames, names)
			}
			if len(leaf.IPAddresses)+len(leaf.EmailAddresses)+len(leaf.URIs) != 0 {
				t.Error("leaf carries non-DNS names")
			}
			if leaf.IsCA {
				t.Error("leaf is a CA")
			}
			if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || leaf.PublicKeyAlgorithm != x509.ECDSA || leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("leaf key %v signed with %v, want ECDSA", leaf.PublicKeyAlgorithm, leaf.SignatureAlgorithm)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
				t.Errorf("ExtKeyUsage = %v", leaf.ExtKeyUsage)
			}
			life := leaf.NotAfter.Sub(before)
			if life < LeafValidity-time.Minute || life > LeafValidity+time.Minute {
				t.Errorf("leaf valid for %v from now, want ~%v", life, LeafValidity)
			}
			if leaf.NotBefore.After(before) {
				t.Errorf("NotBefore %v is not back-dated", leaf.NotBefore)
			}
			host := strings.Replace(names[0], "*", "x", 1)
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: ca.CertPool()}); err != nil {
				t.Errorf("leaf does not verify for %s: %v", host, err)
			}
		})
	}
}

func TestLocalIssuerRefuses(t *testing.T) {
	ca := newTestCA(t, t.TempDir())
	li, err := NewLocalIssuer(ca, LocalIssuerConfig{BaseDomain: "dev.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	key := p256(t)
	refusedNames := [][]string{
		{"example.test"},
		{"evil.test"},
		{"*.*.dev.example.test"},
		{"a.*.dev.example.test"},
		{"xdev.example.test"},
		{"dev.example.test.evil.test"},
		{"app.dev.example.test."},
		{"app..dev.example.test"},
		{"-app.dev.example.test"},
		{"ap_p.dev.example.test"},
		{"bücher.dev.example.test"},
		{"dev.example.test", "evil.test"}, // one bad name spoils the request
		{"*"},
	}
	for _, names := range refusedNames {
		t.Run(strings.Join(names, ","), func(t *testing.T) {
			err := li.PreCheck(context.Background(), names, false)
			assertRefused(t, "PreCheck", err, ErrNameNotAllowed)
			_, err = li.Issue(context.Background(), &x509.CertificateRequest{DNSNames: names})
			if err == nil {
				t.Fatal("Issue signed it")
			}
		})
	}

	// Deeper names under the base and their wildcards are signed: reserved
	// domains under the base need them (docs/wildcard-endpoints.md#certificates);
	// the Manager asks only for reserved ones.
	for _, names := range [][]string{{"a.b.dev.example.test"}, {"*.a.dev.example.test"}} {
		if err := li.PreCheck(context.Background(), names, false); err != nil {
			t.Errorf("PreCheck %v: %v", names, err)
		}
	}

	ok := []string{"app.dev.example.test"}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	badSig := newCSR(t, key, &x509.CertificateRequest{DNSNames: ok})
	badSig.Signature = slices.Clone(badSig.Signature)
	badSig.Signature[len(badSig.Signature)-1] ^= 0xff
	csrs := map[string]*x509.CertificateRequest{
		"no names":   newCSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "app.dev.example.test"}}),
		"ip":         newCSR(t, key, &x509.CertificateRequest{DNSNames: ok, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}),
		"email":      newCSR(t, key, &x509.CertificateRequest{DNSNames: ok, EmailAddresses: []string{"a@dev.example.test"}}),
		"foreign cn": newCSR(t, key, &x509.CertificateRequest{DNSNames: ok, Subject: pkix.Name{CommonName: "evil.test"}}),
		"ed25519":    newCSR(t, edKey, &x509.CertificateRequest{DNSNames: ok}),
		"p224":       newCSR(t, p224, &x509.CertificateRequest{DNSNames: ok}),
		"bad sig":    badSig,
		"too many":   newCSR(t, key, &x509.CertificateRequest{DNSNames: slices.Repeat(ok, maxCSRNames+1)}),
	}
	for name, csr := range csrs {
		t.Run(name, func(t *testing.T) {
			_, err := li.Issue(context.Background(), csr)
			assertRefused(t, "Issue", err, ErrBadCSR)
		})
	}
	t.Run("nil", func(t *testing.T) {
		_, err := li.Issue(context.Background(), nil)
		assertRefused(t, "Issue", err, ErrBadCSR)
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := li.Issue(ctx, newCSR(t, key, &x509.CertificateRequest{DNSNames: ok})); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func assertRefused(t *testing.T, op string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", op, err, want)
	}
	var nr certmagic.ErrNoRetry
	if !errors.As(err, &nr) {
		t.Errorf("%s: %v is not certmagic.ErrNoRetry; certmagic would retry it", op, err)
	}
}

func TestLocalIssuerValidityClampedToCA(t *testing.T) {
	ca := newTestCA(t, t.TempDir())
	li, err := NewLocalIssuer(ca, LocalIssuerConfig{BaseDomain: "dev.test", Validity: 20 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ic, err := li.Issue(context.Background(), newCSR(t, p256(t), &x509.CertificateRequest{DNSNames: []string{"dev.test"}}))
	if err != nil {
		t.Fatal(err)
	}
	if leaf := parseLeafPEM(t, ic.Certificate); leaf.NotAfter.After(ca.Certificate().NotAfter) {
		t.Errorf("leaf outlives its CA: %v > %v", leaf.NotAfter, ca.Certificate().NotAfter)
	}
}

func TestNewLocalIssuerValidation(t *testing.T) {
	ca := newTestCA(t, t.TempDir())
	tests := []struct {
		name string
		ca   *CA
		cfg  LocalIssuerConfig
	}{
		{"nil CA", nil, LocalIssuerConfig{BaseDomain: "dev.test"}},
		{"no base", ca, LocalIssuerConfig{}},
		{"IP base", ca, LocalIssuerConfig{BaseDomain: "127.0.0.1"}},
		{"unicode base", ca, LocalIssuerConfig{BaseDomain: "bücher.test"}},
		{"wildcard base", ca, LocalIssuerConfig{BaseDomain: "*.dev.test"}},
		{"negative validity", ca, LocalIssuerConfig{BaseDomain: "dev.test", Validity: -time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewLocalIssuer(tt.ca, tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestIssuerKeyDiffersPerCA(t *testing.T) {
	a, _ := NewLocalIssuer(newTestCA(t, t.TempDir()), LocalIssuerConfig{BaseDomain: "dev.test"})
	b, _ := NewLocalIssuer(newTestCA(t, t.TempDir()), LocalIssuerConfig{BaseDomain: "dev.test"})
	if a.IssuerKey() == b.IssuerKey() {
		t.Errorf("two CAs share IssuerKey %q: leaves of one would be served for the other", a.IssuerKey())
	}
}
