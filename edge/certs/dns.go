package certs

import (
	"encoding/base64"
	"fmt"
	"net"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/cloudflare"
	"github.com/libdns/rfc2136"
)

// DNS provider names for DNSProviderConfig.Name.
const (
	// DNSCloudflare manages records through the Cloudflare API.
	DNSCloudflare = "cloudflare"
	// DNSRFC2136 sends RFC 2136 dynamic updates, signed with TSIG (RFC
	// 8945), to any DNS server that accepts them (BIND, Knot, PowerDNS,
	// CoreDNS...).
	DNSRFC2136 = "rfc2136"
)

// DNSProviderConfig names a libdns provider and its settings. Secrets
// (APIToken, TSIGSecret) come from the environment or a file, never from a
// command-line flag, and are never logged.
type DNSProviderConfig struct {
	// Name is DNSCloudflare or DNSRFC2136.
	Name string
	// APIToken is the Cloudflare API token (Zone.DNS:Edit). Cloudflare only.
	APIToken string
	// Server is the DNS server that takes updates, "host:port" (port 53 if
	// omitted). RFC 2136 only.
	Server string
	// TSIGKeyName, TSIGAlgorithm ("hmac-sha256" by default) and TSIGSecret
	// (base64) sign the updates. RFC 2136 only.
	TSIGKeyName, TSIGAlgorithm, TSIGSecret string
}

// NewDNSProvider returns the libdns provider cfg names. Errors wrap
// ErrInvalidConfig and never contain a secret.
func NewDNSProvider(cfg DNSProviderConfig) (certmagic.DNSProvider, error) {
	switch strings.ToLower(cfg.Name) {
	case DNSCloudflare:
		if cfg.APIToken == "" {
			return nil, fmt.Errorf("%w: the cloudflare DNS provider needs an API token", ErrInvalidConfig)
		}
		return &cloudflare.Provider{APIToken: cfg.APIToken}, nil
	case DNSRFC2136:
		server := cfg.Server
		if server == "" {
			return nil, fmt.Errorf("%w: the rfc2136 DNS provider needs a server address", ErrInvalidConfig)
		}
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(server, "53")
		}
		if cfg.TSIGKeyName == "" || cfg.TSIGSecret == "" {
			return nil, fmt.Errorf("%w: the rfc2136 DNS provider needs a TSIG key name and secret", ErrInvalidConfig)
		}
		if _, err := base64.StdEncoding.DecodeString(cfg.TSIGSecret); err != nil {
			return nil, fmt.Errorf("%w: the TSIG secret is not base64", ErrInvalidConfig)
		}
		alg := cfg.TSIGAlgorithm
		if alg == "" {
			alg = "hmac-sha256"
		}
		switch strings.TrimSuffix(strings.ToLower(alg), ".") {
		case "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512":
		default:
			return nil, fmt.Errorf("%w: TSIG algorithm %q: use hmac-sha256 (or hmac-sha1/224/384/512)", ErrInvalidConfig, alg)
		}
		return &rfc2136.Provider{KeyName: cfg.TSIGKeyName, KeyAlg: alg, Key: cfg.TSIGSecret, Server: server}, nil
	case "":
		return nil, fmt.Errorf("%w: no DNS provider named", ErrInvalidConfig)
	}
	return nil, fmt.Errorf("%w: unknown DNS provider %q: use %s or %s", ErrInvalidConfig, cfg.Name, DNSCloudflare, DNSRFC2136)
}
