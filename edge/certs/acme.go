package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// LetsEncryptProduction is the default ACME directory.
const LetsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"

// ACMEConfig configures certificates from an ACME CA (RFC 8555). The zero
// value, with ports filled in, is Let's Encrypt production over HTTP-01 and
// TLS-ALPN-01 with one certificate per name. It is plain data, so that a
// config file or flags can fill it.
type ACMEConfig struct {
	// CA is the ACME directory URL. Default LetsEncryptProduction.
	CA string
	// TrustedRoots verify the CA's HTTPS endpoint (a private CA such as
	// Pebble or step-ca). nil = the system roots.
	TrustedRoots *x509.CertPool
	// Email is the ACME account's contact. Optional.
	Email string
	// Profile selects an ACME certificate profile (draft-ietf-acme-profiles),
	// e.g. "shortlived". "" = the CA's default.
	Profile string

	// DNS solves DNS-01, which the wildcard "*.<base>" needs. nil: no
	// wildcard; names under the base domain get certificates one by one,
	// on demand, over HTTP-01 or TLS-ALPN-01.
	DNS *DNSConfig

	// ListenHost is the host of the public listeners that answer challenges
	// ("" = all interfaces). It only matters if no listener of ours is bound
	// at HTTPPort or TLSALPNPort, in which case certmagic binds one there
	// for the duration of a challenge.
	ListenHost string
	// HTTPPort is the port the CA connects to for HTTP-01: the edge's public
	// HTTP listener, which must pass challenge requests to
	// Manager.HandleHTTPChallenge. Default 80.
	HTTPPort int
	// TLSALPNPort is the port the CA connects to for TLS-ALPN-01: the
	// edge's public HTTPS listener, whose tls.Config must offer "acme-tls/1"
	// (ACMETLSALPNProto) and take certificates from Manager.GetCertificate.
	// Default 443.
	TLSALPNPort int
	// DisableHTTPChallenge and DisableTLSALPNChallenge turn a challenge
	// type off (e.g. when port 80 is not reachable).
	DisableHTTPChallenge, DisableTLSALPNChallenge bool

	// ObtainTimeout bounds one issuance attempt. Default 90s.
	ObtainTimeout time.Duration
}

// DNSConfig configures DNS-01 through a libdns provider.
type DNSConfig struct {
	// Provider writes and deletes the _acme-challenge TXT records; see
	// NewDNSProvider. Required.
	Provider certmagic.DNSProvider
	// Resolvers are the DNS servers ("host:port") used to find the zone of a
	// name (its SOA) and to check propagation. Default: the system's.
	Resolvers []string
	// PropagationTimeout bounds the wait for the TXT record to be visible at
	// the zone's authoritative servers; -1 skips the check. Default 2m.
	PropagationTimeout time.Duration
	// TTL of the challenge records. Default: the provider's.
	TTL time.Duration
}

// ACMETLSALPNProto is the ALPN protocol of TLS-ALPN-01 (RFC 8737 §6). A
// public listener offers it in NextProtos and closes a connection that
// negotiated it right after the handshake.
const ACMETLSALPNProto = "acme-tls/1"

// validate checks c and fills defaults, returning a copy.
func (c ACMEConfig) validate() (ACMEConfig, error) {
	if c.CA == "" {
		c.CA = LetsEncryptProduction
	}
	u, err := url.Parse(c.CA)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return c, fmt.Errorf("%w: ACME directory %q must be an https:// URL", ErrInvalidConfig, c.CA)
	}
	if c.Email != "" && (!strings.Contains(c.Email, "@") || strings.ContainsAny(c.Email, " \t\r\n")) {
		return c, fmt.Errorf("%w: ACME email %q is not an email address", ErrInvalidConfig, c.Email)
	}
	if c.HTTPPort == 0 {
		c.HTTPPort = 80
	}
	if c.TLSALPNPort == 0 {
		c.TLSALPNPort = 443
	}
	for _, p := range []int{c.HTTPPort, c.TLSALPNPort} {
		if p < 1 || p > 65535 {
			return c, fmt.Errorf("%w: challenge port %d out of range", ErrInvalidConfig, p)
		}
	}
	if c.DisableHTTPChallenge && c.DisableTLSALPNChallenge && c.DNS == nil {
		return c, fmt.Errorf("%w: every ACME challenge type is disabled", ErrInvalidConfig)
	}
	if c.DNS != nil {
		if c.DNS.Provider == nil {
			return c, fmt.Errorf("%w: DNS-01 needs a DNS provider", ErrInvalidConfig)
		}
		for _, r := range c.DNS.Resolvers {
			if _, _, err := net.SplitHostPort(r); err != nil {
				return c, fmt.Errorf("%w: DNS resolver %q must be host:port", ErrInvalidConfig, r)
			}
		}
	}
	if c.ObtainTimeout == 0 {
		c.ObtainTimeout = 90 * time.Second
	}
	return c, nil
}

// acmeIssuers builds the two ACME issuers on cfg: perName solves HTTP-01 and
// TLS-ALPN-01 (any name but a wildcard); wildcard, only when DNS is set,
// solves DNS-01. Both use the same directory, so they share the ACME
// account and the storage keys of their certificates.
func (c ACMEConfig) issuers(cfg *certmagic.Config, log *zap.Logger) (perName, wildcard *certmagic.ACMEIssuer) {
	tmpl := certmagic.ACMEIssuer{
		CA:                      c.CA,
		TestCA:                  c.CA,
		Email:                   c.Email,
		Agreed:                  true,
		Profile:                 c.Profile,
		TrustedRoots:            c.TrustedRoots,
		CertObtainTimeout:       c.ObtainTimeout,
		ListenHost:              c.ListenHost,
		AltHTTPPort:             c.HTTPPort,
		AltTLSALPNPort:          c.TLSALPNPort,
		DisableHTTPChallenge:    c.DisableHTTPChallenge,
		DisableTLSALPNChallenge: c.DisableTLSALPNChallenge,
		Logger:                  log,
	}
	perName = certmagic.NewACMEIssuer(cfg, tmpl)
	if c.DNS != nil {
		w := tmpl
		w.DNS01Solver = &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider:        c.DNS.Provider,
			Resolvers:          c.DNS.Resolvers,
			PropagationTimeout: c.DNS.PropagationTimeout,
			TTL:                c.DNS.TTL,
			Logger:             log,
		}}
		if len(c.DNS.Resolvers) > 0 {
			w.Resolver = c.DNS.Resolvers[0]
		}
		wildcard = certmagic.NewACMEIssuer(cfg, w)
	}
	return perName, wildcard
}

// problemCode classifies an issuance error for
// certificate_management_status: "DNS_ERROR" when the CA could not validate
// or refused the name (the user must fix DNS or CAA), "INTERNAL_ERROR" for
// everything temporary (CA unreachable, rate limited, server errors).
func problemCode(err error) string {
	var p acme.Problem
	if errors.As(err, &p) {
		for _, sub := range append([]acme.Subproblem{{Problem: p}}, p.Subproblems...) {
			switch strings.TrimPrefix(sub.Type, "urn:ietf:params:acme:error:") {
			case "dns", "connection", "unauthorized", "caa", "incorrectResponse",
				"rejectedIdentifier", "tls", "unsupportedIdentifier":
				return StatusDNSError
			}
		}
	}
	return StatusInternalError
}
