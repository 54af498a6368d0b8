package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	"github.com/caddyserver/certmagic"
)

// LeafValidity is the default lifetime of a leaf certificate from the local
// CA: the same 90 days as Let's Encrypt, so renewal runs in dev as it does
// with ACME (certmagic renews in the last third of the lifetime).
const LeafValidity = 90 * 24 * time.Hour

// clockSkew back-dates NotBefore so clients with a slightly slow clock
// accept a certificate issued a moment ago.
const clockSkew = 5 * time.Minute

// maxCSRNames bounds the names one request may carry.
const maxCSRNames = 100

// LocalIssuerConfig configures NewLocalIssuer.
type LocalIssuerConfig struct {
	// BaseDomain is the edge's base domain (ASCII, punycode for IDNs; a
	// trailing dot is dropped). Required. The issuer signs only this name
	// and names under it (UnderBase): "*.<BaseDomain>", names one label
	// under it, and deeper names and their wildcards, which only reserved
	// domains get (the Manager asks for nothing else).
	BaseDomain string
	// Validity is the lifetime of issued leaves. Default LeafValidity. Never
	// extends past the CA's own expiry.
	Validity time.Duration
}

// LocalIssuer is a certmagic.Issuer (and certmagic.PreChecker) that signs
// certificate requests with a local CA: ECDSA leaves for server auth,
// carrying exactly the request's DNS names. It refuses any name that
// UnderBase rejects, so even a misconfigured Manager cannot mint a certificate for a
// name outside the base domain. Safe for concurrent use.
type LocalIssuer struct {
	ca       *CA
	base     string
	validity time.Duration
	now      func() time.Time // tests move the clock
}

var (
	_ certmagic.Issuer     = (*LocalIssuer)(nil)
	_ certmagic.PreChecker = (*LocalIssuer)(nil)
)

// NewLocalIssuer returns an issuer signing with ca for names under
// cfg.BaseDomain. It fails with ErrInvalidConfig for a nil CA, a base domain
// that is not an ASCII hostname, or a negative validity.
func NewLocalIssuer(ca *CA, cfg LocalIssuerConfig) (*LocalIssuer, error) {
	if ca == nil {
		return nil, fmt.Errorf("%w: local issuer needs a CA", ErrInvalidConfig)
	}
	base, err := normalizeBase(cfg.BaseDomain)
	if err != nil {
		return nil, err
	}
	if cfg.Validity < 0 {
		return nil, fmt.Errorf("%w: negative leaf validity %s", ErrInvalidConfig, cfg.Validity)
	}
	if cfg.Validity == 0 {
		cfg.Validity = LeafValidity
	}
	return &LocalIssuer{ca: ca, base: base, validity: cfg.Validity, now: time.Now}, nil
}

// IssuerKey identifies this CA in certmagic storage:
// "tollgate-local-<first 8 bytes of the root's SHA-256, hex>". A new CA gets
// a new key, so leaves signed by an old root are never loaded and served.
func (li *LocalIssuer) IssuerKey() string { return "tollgate-local-" + li.ca.id }

// PreCheck refuses, before any key is generated or lock taken, a request for
// a name the issuer would not sign. The error wraps ErrNameNotAllowed in
// certmagic.ErrNoRetry.
func (li *LocalIssuer) PreCheck(_ context.Context, names []string, _ bool) error {
	for _, n := range names {
		if err := li.checkName(n); err != nil {
			return err
		}
	}
	return nil
}

// Issue signs csr and returns the leaf in PEM. It refuses (with
// certmagic.ErrNoRetry wrapping ErrNameNotAllowed or ErrBadCSR) a request
// whose signature does not verify, that has no DNS names or more than 100,
// any IP/email/URI name, a common name that is not one of its DNS names, a
// DNS name UnderBase rejects, or a public key other than ECDSA P-256/P-384.
func (li *LocalIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if csr == nil {
		return nil, noRetry(fmt.Errorf("%w: no request", ErrBadCSR))
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, noRetry(fmt.Errorf("%w: signature: %v", ErrBadCSR, err))
	}
	switch {
	case len(csr.DNSNames) == 0:
		return nil, noRetry(fmt.Errorf("%w: no DNS names", ErrBadCSR))
	case len(csr.DNSNames) > maxCSRNames:
		return nil, noRetry(fmt.Errorf("%w: %d names, at most %d", ErrBadCSR, len(csr.DNSNames), maxCSRNames))
	case len(csr.IPAddresses) > 0 || len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0:
		return nil, noRetry(fmt.Errorf("%w: only DNS names are signed", ErrBadCSR))
	case csr.Subject.CommonName != "" && !slices.Contains(csr.DNSNames, csr.Subject.CommonName):
		return nil, noRetry(fmt.Errorf("%w: common name %q is not one of the DNS names", ErrBadCSR, csr.Subject.CommonName))
	}
	for _, n := range csr.DNSNames {
		if err := li.checkName(n); err != nil {
			return nil, err
		}
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || (pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384()) {
		return nil, noRetry(fmt.Errorf("%w: key must be ECDSA P-256 or P-384, got %T", ErrBadCSR, csr.PublicKey))
	}

	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := li.now()
	notAfter := now.Add(li.validity)
	if caEnd := li.ca.cert.NotAfter; notAfter.After(caEnd) {
		notAfter = caEnd
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		DNSNames:              slices.Clone(csr.DNSNames),
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if cn := csr.DNSNames[0]; len(cn) <= 64 { // X.520 ub-common-name; SANs are what clients check
		tmpl.Subject = pkix.Name{CommonName: cn}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, li.ca.cert, pub, li.ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %v: %w", csr.DNSNames, err)
	}
	return &certmagic.IssuedCertificate{
		Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

// checkName returns nil if the issuer may sign name.
func (li *LocalIssuer) checkName(name string) error {
	if UnderBase(li.base, name) {
		return nil
	}
	return noRetry(fmt.Errorf("%w: %q is not %s or a name under it", ErrNameNotAllowed, name, li.base))
}

// noRetry marks err as permanent for certmagic's retry loop.
func noRetry(err error) error { return certmagic.ErrNoRetry{Err: err} }

// normalizeBase lower-cases a base domain, drops one trailing dot and checks
// that it is an ASCII hostname and not an IP address.
func normalizeBase(base string) (string, error) {
	b := lowerASCII(base)
	if len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	if !validHostname(b) {
		return "", fmt.Errorf("%w: base domain %q is not an ASCII hostname (use punycode for IDNs)", ErrInvalidConfig, base)
	}
	return b, nil
}
