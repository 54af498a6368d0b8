package config

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/tollgate/tollgate/policy"
)

// Endpoint protocols. ProtoHTTP and ProtoHTTPS are one kind of endpoint
// (HTTP); the scheme says which public URL is asked for.
const (
	ProtoHTTP  = "http"
	ProtoHTTPS = "https"
	ProtoTCP   = "tcp"
	ProtoTLS   = "tls"
)

// Endpoint describes one endpoint of the agent, as the command line
// (`tollgate http|tcp|tls`) or an entry under 'endpoints:' in the agent's
// config file (AgentFileEndpoint) gives it: the public URL the edge serves
// and the upstream the agent forwards to. Validate checks it.
type Endpoint struct {
	// Name identifies the endpoint in the inspection API and logs; it is
	// sent to the edge as the bind name. Required and unique.
	Name string
	// Proto is "http", "https", "tcp" or "tls". "" means the scheme of URL.
	Proto string
	// URL is the public URL to bind: https://app.example.com,
	// tcp://1.tcp.example.com:20002, tls://app.example.com. A bare host
	// name gets the scheme of Proto. "" lets the edge choose.
	URL string
	// Upstream is where traffic goes: a port, HOST:PORT, or (HTTP only) an
	// http:// or https:// URL. See ParseUpstream.
	Upstream string
	// UpstreamTLSInsecure skips verification of an https:// upstream's
	// certificate (self-signed development servers). Default false.
	UpstreamTLSInsecure bool
	// MinTLS is the minimum TLS version public clients must use, "1.2" or
	// "1.3"; "" means the edge's default. HTTP(S) and TLS endpoints only.
	MinTLS string
	// HSTS is the Strict-Transport-Security value the edge sets on the
	// endpoint's HTTPS responses, such as "max-age=31536000;
	// includeSubDomains" (policy.ParseHSTS: max-age 0 to two years;
	// preload needs includeSubDomains and a year); "" = none. HTTP
	// endpoints only; a reserved domain's setting wins (docs/tls.md#hsts).
	HSTS string
	// CIDRAllow and CIDRDeny restrict which client addresses the edge lets
	// through (CIDRs such as 203.0.113.0/24; a bare IP means one address).
	CIDRAllow, CIDRDeny []string
	// IPPolicyIDs names IP policies (ipp_...) of the account whose rules
	// join CIDRAllow and CIDRDeny at the edge.
	IPPolicyIDs []string
	// BasicAuth lists "user:password" pairs the edge requires; HTTP only.
	BasicAuth []string
	// Metadata is opaque text stored with the endpoint at the edge.
	Metadata string
	// PoolingEnabled asks the edge to let other agents of the account
	// that also ask for it bind the same URL: requests are then balanced
	// across them (the hosted platform's pooling_enabled). Default false:
	// a second agent binding the URL is refused (TG_334).
	PoolingEnabled bool
	// ProxyProto asks the edge to send a PROXY protocol header (version 1
	// or 2) in front of each connection, so the upstream sees the public
	// client's address. 0 = none. TCP and TLS endpoints only.
	ProxyProto int
	// TerminateCert and TerminateKey are PEM files of a certificate and
	// its key: the edge terminates the TLS endpoint's connections with
	// them and the upstream receives the decrypted bytes. Both or neither;
	// TLS endpoints only. The key is a secret: sent only in the Bind.
	TerminateCert, TerminateKey string
}

// BasicAuthUser is one user name and password of an endpoint's basic auth.
// Password is a secret: never log it.
type BasicAuthUser struct{ User, Password string }

// EndpointSpec is a validated Endpoint in normal form, as Validate returns
// it; fields named as in Endpoint hold the same setting. It holds
// basic-auth passwords and a TLS key: never log it.
type EndpointSpec struct {
	Name                string
	Kind                string // ProtoHTTP, ProtoTCP or ProtoTLS
	BindProto           string // the Bind message's Proto: http, https, tcp or tls
	URL                 string // normalised requested URL; "" = the edge chooses
	Upstream            Upstream
	UpstreamTLSInsecure bool
	MinTLS              string   // "", "1.2" or "1.3"
	HSTS                string   // canonical (policy.HSTS.String); "" = none
	CIDRAllow           []string // canonical prefixes
	CIDRDeny            []string // canonical prefixes
	IPPolicyIDs         []string // trimmed
	BasicAuth           []BasicAuthUser
	Metadata            string
	PoolingEnabled      bool
	ProxyProto          int32  // 0, 1 or 2
	TerminateCert       []byte // PEM; with TerminateKey, the edge terminates TLS
	TerminateKey        []byte // PEM; a secret
}

// endpointKind folds "https" into "http".
func endpointKind(proto string) string {
	if proto == ProtoHTTPS {
		return ProtoHTTP
	}
	return proto
}

// Validate checks c and returns its normalised form; it reads the files
// TerminateCert and TerminateKey name, and does no other I/O. Errors are
// *codes.Error with code TG_9002 that name the endpoint (unless it is
// CommandLineEndpoint).
func (c Endpoint) Validate() (*EndpointSpec, error) {
	if strings.TrimSpace(c.Name) == "" {
		return nil, invalid("Every endpoint needs a name.")
	}
	proto := strings.ToLower(strings.TrimSpace(c.Proto))
	switch proto {
	case "", ProtoHTTP, ProtoHTTPS, ProtoTCP, ProtoTLS:
	default:
		return nil, endpointError(c.Name, "unknown proto %q: use http, https, tcp or tls.", c.Proto)
	}
	bindProto, u, err := ParseEndpointURL(proto, c.URL)
	if err != nil {
		return nil, wrapEndpointError(c.Name, err)
	}
	s := &EndpointSpec{
		Name:                c.Name,
		Kind:                endpointKind(bindProto),
		BindProto:           bindProto,
		URL:                 u,
		UpstreamTLSInsecure: c.UpstreamTLSInsecure,
		Metadata:            c.Metadata,
		PoolingEnabled:      c.PoolingEnabled,
	}
	if s.Upstream, err = ParseUpstream(s.Kind, c.Upstream); err != nil {
		return nil, wrapEndpointError(c.Name, err)
	}
	switch c.MinTLS {
	case "":
	case "1.2", "1.3":
		if s.Kind == ProtoTCP {
			return nil, endpointError(c.Name, "a minimum TLS version applies to http and tls endpoints, not tcp.")
		}
		s.MinTLS = c.MinTLS
	default:
		return nil, endpointError(c.Name, "the minimum TLS version %q is not supported: use 1.2 or 1.3.", c.MinTLS)
	}
	if strings.TrimSpace(c.HSTS) != "" {
		if s.Kind != ProtoHTTP {
			return nil, endpointError(c.Name, "HSTS (--hsts) applies to http endpoints only.")
		}
		if s.HSTS, err = policy.CanonicalHSTS(c.HSTS); err != nil {
			return nil, endpointError(c.Name, "the HSTS value is not valid: %v.", err)
		}
	}
	if s.CIDRAllow, err = parseCIDRs(c.Name, "cidr_allow (--cidr-allow)", c.CIDRAllow); err != nil {
		return nil, err
	}
	if s.CIDRDeny, err = parseCIDRs(c.Name, "cidr_deny (--cidr-deny)", c.CIDRDeny); err != nil {
		return nil, err
	}
	for _, id := range c.IPPolicyIDs {
		id = strings.TrimSpace(id)
		if !strings.HasPrefix(id, "ipp_") || len(id) <= len("ipp_") {
			return nil, endpointError(c.Name, "%q in ip_policy_ids (--ip-policy-id) is not an IP policy ID such as ipp_2Vk...", id)
		}
		s.IPPolicyIDs = append(s.IPPolicyIDs, id)
	}
	if len(c.BasicAuth) > 0 && s.Kind != ProtoHTTP {
		return nil, endpointError(c.Name, "basic auth applies to http endpoints only.")
	}
	switch {
	case c.ProxyProto == 0:
	case c.ProxyProto != 1 && c.ProxyProto != 2:
		return nil, endpointError(c.Name, "the PROXY protocol version %d is not supported: use 1 or 2.", c.ProxyProto)
	case s.Kind == ProtoHTTP:
		return nil, endpointError(c.Name, "the PROXY protocol applies to tcp and tls endpoints only.")
	default:
		s.ProxyProto = int32(c.ProxyProto)
	}
	if c.TerminateCert != "" || c.TerminateKey != "" {
		if s.Kind != ProtoTLS {
			return nil, endpointError(c.Name, "terminating TLS at the edge (--crt, --key) applies to tls endpoints only.")
		}
		if c.TerminateCert == "" || c.TerminateKey == "" {
			return nil, endpointError(c.Name, "terminating TLS at the edge needs both a certificate (--crt) and its key (--key).")
		}
		if s.TerminateCert, err = os.ReadFile(c.TerminateCert); err != nil {
			return nil, endpointError(c.Name, "the certificate file could not be read: %v.", err)
		}
		if s.TerminateKey, err = os.ReadFile(c.TerminateKey); err != nil {
			return nil, endpointError(c.Name, "the key file could not be read: %v.", err)
		}
		if _, err := tls.X509KeyPair(s.TerminateCert, s.TerminateKey); err != nil {
			return nil, endpointError(c.Name, "the certificate and key do not form a key pair: %v.", err)
		}
	}
	for _, pair := range c.BasicAuth {
		user, pass, ok := strings.Cut(pair, ":")
		if !ok || user == "" || pass == "" {
			// Never echo the pair: it holds a password.
			return nil, endpointError(c.Name, "a basic-auth value is not of the form USER:PASSWORD.")
		}
		s.BasicAuth = append(s.BasicAuth, BasicAuthUser{User: user, Password: pass})
	}
	return s, nil
}

// ParseEndpointURL validates the public URL of an endpoint with the given
// proto ("" = take it from the URL) and returns the Bind proto and the
// normalised URL (scheme://host[:port], host lower-case punycode). An empty
// raw URL asks the edge to choose one; then proto is required, and an http
// endpoint asks for https. Accepted:
//
//	https://app.example.com[:port]  http://app.example.com[:port]  (proto http or https)
//	tcp://host:port                                                 (proto tcp; port required)
//	tls://app.example.com[:port]                                    (proto tls)
//
// A host name without a scheme takes the scheme of proto. Paths, queries,
// fragments and user info are refused. Errors are *codes.Error TG_9002.
func ParseEndpointURL(proto, raw string) (bindProto, normalised string, err error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		switch proto {
		case "":
			return "", "", invalid("Give the endpoint a proto (http, tcp, tls) or a URL.")
		case ProtoHTTP:
			return ProtoHTTPS, "", nil
		}
		return proto, "", nil
	}
	if !strings.Contains(raw, "://") {
		switch proto {
		case "":
			return "", "", invalid("The URL %q has no scheme: use https://%s, tcp://%s or tls://%s.", raw, raw, raw, raw)
		case ProtoHTTP:
			raw = "https://" + raw
		default:
			raw = proto + "://" + raw
		}
	}
	u, perr := url.Parse(raw)
	if perr != nil || u.Opaque != "" {
		return "", "", invalid("The URL %q cannot be parsed: use a form like https://app.example.com.", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case ProtoHTTP, ProtoHTTPS, ProtoTCP, ProtoTLS:
	default:
		return "", "", invalid("The URL %q has an unsupported scheme %q: use https, http, tcp or tls.", raw, u.Scheme)
	}
	if proto != "" && endpointKind(proto) != endpointKind(scheme) {
		return "", "", invalid("The URL %q does not match proto %s: a %s endpoint needs a %s URL.", raw, proto, proto, urlSchemesFor(proto))
	}
	if proto == ProtoHTTPS && scheme == ProtoHTTP {
		return "", "", invalid("The URL %q does not match proto https: use https://%s.", raw, u.Host)
	}
	if u.User != nil {
		return "", "", invalid("The URL %q must not contain user info: use basic_auth for credentials.", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", "", invalid("The URL %q must not have a path, query or fragment: use %s://%s.", raw, scheme, u.Host)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", "", invalid("The URL %q has no host name.", raw)
	}
	if strings.HasSuffix(u.Host, ":") {
		return "", "", invalid("The URL %q has an empty port.", raw)
	}
	if port != "" {
		if checkPort(port) != nil {
			return "", "", invalid("The URL %q has an invalid port %q: use a number from 1 to 65535.", raw, port)
		}
	} else if scheme == ProtoTCP {
		return "", "", invalid("The URL %q has no port: use tcp://HOST:PORT.", raw)
	}
	host, herr := normalizeEndpointHost(scheme, host)
	if herr != nil {
		return "", "", invalid("The URL %q has an invalid host name: %v.", raw, herr)
	}
	hostPort := host
	if strings.Contains(host, ":") {
		hostPort = "[" + host + "]"
	}
	if port != "" {
		hostPort = net.JoinHostPort(host, port)
	}
	return scheme, scheme + "://" + hostPort, nil
}

// normalizeEndpointHost puts a public host name in normal form
// (policy.NormalizeDomainPattern). A leading "*." (wildcard) is allowed for
// http(s) and tls; an IP literal only for tcp.
func normalizeEndpointHost(scheme, host string) (string, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if scheme != ProtoTCP {
			return "", errString("use a host name, not an IP address")
		}
		return ip.String(), nil
	}
	if scheme == ProtoTCP && strings.HasPrefix(host, "*.") {
		return "", errString("tcp endpoints cannot be wildcards")
	}
	name, err := policy.NormalizeDomainPattern(host)
	if herr, ok := errors.AsType[*policy.HostnameError](err); ok {
		return "", errString(herr.Reason)
	}
	return name, err
}

func urlSchemesFor(proto string) string {
	switch endpointKind(proto) {
	case ProtoHTTP:
		return "https:// (or http://)"
	default:
		return proto + "://"
	}
}

// parseCIDRs validates CIDRs (a bare IP is one address) and returns them
// in canonical form.
func parseCIDRs(name, key string, in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked().String())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()).String())
			continue
		}
		return nil, endpointError(name, "%q in %s is not a CIDR such as 203.0.113.0/24 or an IP address.", s, key)
	}
	return out, nil
}
