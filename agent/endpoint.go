package agent

import (
	"crypto/tls"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"golang.org/x/net/idna"
)

// Endpoint protocols. ProtoHTTP and ProtoHTTPS are one kind of endpoint
// (HTTP); the scheme says which public URL is asked for.
const (
	ProtoHTTP  = "http"
	ProtoHTTPS = "https"
	ProtoTCP   = "tcp"
	ProtoTLS   = "tls"
)

// EndpointConfig describes one endpoint: the public URL the edge serves and
// the upstream the agent forwards to.
type EndpointConfig struct {
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

// credential is one basic-auth user.
type credential struct{ user, password string }

// endpointSpec is a validated EndpointConfig.
type endpointSpec struct {
	name       string
	kind       string // ProtoHTTP, ProtoTCP or ProtoTLS
	bindProto  string // the Bind message's Proto
	url        string // normalised requested URL; "" = edge chooses
	upstream   Upstream
	insecure   bool
	minTLS     string
	allow      []string
	deny       []string
	policyIDs  []string
	basicAuth  []credential
	metadata   string
	proxyProto int32
	termCert   []byte // PEM; with termKey, the edge terminates TLS
	termKey    []byte // PEM; a secret
}

// endpointKind folds "https" into "http".
func endpointKind(proto string) string {
	if proto == ProtoHTTPS {
		return ProtoHTTP
	}
	return proto
}

// validate checks c and returns its normalised form. Errors are
// *codes.Error with code TG_9002 that name the endpoint.
func (c EndpointConfig) validate() (*endpointSpec, error) {
	if strings.TrimSpace(c.Name) == "" {
		return nil, inputError("Every endpoint needs a name.")
	}
	proto := strings.ToLower(strings.TrimSpace(c.Proto))
	switch proto {
	case "", ProtoHTTP, ProtoHTTPS, ProtoTCP, ProtoTLS:
	default:
		return nil, epError(c.Name, "unknown proto %q: use http, https, tcp or tls.", c.Proto)
	}
	bindProto, u, err := ParseEndpointURL(proto, c.URL)
	if err != nil {
		return nil, epWrap(c.Name, err)
	}
	s := &endpointSpec{
		name:      c.Name,
		kind:      endpointKind(bindProto),
		bindProto: bindProto,
		url:       u,
		insecure:  c.UpstreamTLSInsecure,
		metadata:  c.Metadata,
	}
	if s.upstream, err = ParseUpstream(s.kind, c.Upstream); err != nil {
		return nil, epWrap(c.Name, err)
	}
	switch c.MinTLS {
	case "":
	case "1.2", "1.3":
		if s.kind == ProtoTCP {
			return nil, epError(c.Name, "a minimum TLS version applies to http and tls endpoints, not tcp.")
		}
		s.minTLS = c.MinTLS
	default:
		return nil, epError(c.Name, "the minimum TLS version %q is not supported: use 1.2 or 1.3.", c.MinTLS)
	}
	if s.allow, err = parseCIDRs(c.Name, "cidr_allow (--cidr-allow)", c.CIDRAllow); err != nil {
		return nil, err
	}
	if s.deny, err = parseCIDRs(c.Name, "cidr_deny (--cidr-deny)", c.CIDRDeny); err != nil {
		return nil, err
	}
	for _, id := range c.IPPolicyIDs {
		id = strings.TrimSpace(id)
		if !strings.HasPrefix(id, "ipp_") || len(id) <= len("ipp_") {
			return nil, epError(c.Name, "%q in ip_policy_ids (--ip-policy-id) is not an IP policy ID such as ipp_2Vk...", id)
		}
		s.policyIDs = append(s.policyIDs, id)
	}
	if len(c.BasicAuth) > 0 && s.kind != ProtoHTTP {
		return nil, epError(c.Name, "basic auth applies to http endpoints only.")
	}
	switch {
	case c.ProxyProto == 0:
	case c.ProxyProto != 1 && c.ProxyProto != 2:
		return nil, epError(c.Name, "the PROXY protocol version %d is not supported: use 1 or 2.", c.ProxyProto)
	case s.kind == ProtoHTTP:
		return nil, epError(c.Name, "the PROXY protocol applies to tcp and tls endpoints only.")
	default:
		s.proxyProto = int32(c.ProxyProto)
	}
	if c.TerminateCert != "" || c.TerminateKey != "" {
		if s.kind != ProtoTLS {
			return nil, epError(c.Name, "terminating TLS at the edge (--crt, --key) applies to tls endpoints only.")
		}
		if c.TerminateCert == "" || c.TerminateKey == "" {
			return nil, epError(c.Name, "terminating TLS at the edge needs both a certificate (--crt) and its key (--key).")
		}
		if s.termCert, err = os.ReadFile(c.TerminateCert); err != nil {
			return nil, epError(c.Name, "the certificate file could not be read: %v.", err)
		}
		if s.termKey, err = os.ReadFile(c.TerminateKey); err != nil {
			return nil, epError(c.Name, "the key file could not be read: %v.", err)
		}
		if _, err := tls.X509KeyPair(s.termCert, s.termKey); err != nil {
			return nil, epError(c.Name, "the certificate and key do not form a key pair: %v.", err)
		}
	}
	for _, pair := range c.BasicAuth {
		user, pass, ok := strings.Cut(pair, ":")
		if !ok || user == "" || pass == "" {
			// Never echo the pair: it holds a password.
			return nil, epError(c.Name, "a basic-auth value is not of the form USER:PASSWORD.")
		}
		s.basicAuth = append(s.basicAuth, credential{user: user, password: pass})
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
			return "", "", inputError("Give the endpoint a proto (http, tcp, tls) or a URL.")
		case ProtoHTTP:
			return ProtoHTTPS, "", nil
		}
		return proto, "", nil
	}
	if !strings.Contains(raw, "://") {
		switch proto {
		case "":
			return "", "", inputError("The URL %q has no scheme: use https://%s, tcp://%s or tls://%s.", raw, raw, raw, raw)
		case ProtoHTTP:
			raw = "https://" + raw
		default:
			raw = proto + "://" + raw
		}
	}
	u, perr := url.Parse(raw)
	if perr != nil || u.Opaque != "" {
		return "", "", inputError("The URL %q cannot be parsed: use a form like https://app.example.com.", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case ProtoHTTP, ProtoHTTPS, ProtoTCP, ProtoTLS:
	default:
		return "", "", inputError("The URL %q has an unsupported scheme %q: use https, http, tcp or tls.", raw, u.Scheme)
	}
	if proto != "" && endpointKind(proto) != endpointKind(scheme) {
		return "", "", inputError("The URL %q does not match proto %s: a %s endpoint needs a %s URL.", raw, proto, proto, urlSchemesFor(proto))
	}
	if proto == ProtoHTTPS && scheme == ProtoHTTP {
		return "", "", inputError("The URL %q does not match proto https: use https://%s.", raw, u.Host)
	}
	if u.User != nil {
		return "", "", inputError("The URL %q must not contain user info: use basic_auth for credentials.", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", "", inputError("The URL %q must not have a path, query or fragment: use %s://%s.", raw, scheme, u.Host)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", "", inputError("The URL %q has no host name.", raw)
	}
	if strings.HasSuffix(u.Host, ":") {
		return "", "", inputError("The URL %q has an empty port.", raw)
	}
	if port != "" {
		if checkPort(port) != nil {
			return "", "", inputError("The URL %q has an invalid port %q: use a number from 1 to 65535.", raw, port)
		}
	} else if scheme == ProtoTCP {
		return "", "", inputError("The URL %q has no port: use tcp://HOST:PORT.", raw)
	}
	host, herr := normalizeEndpointHost(scheme, host)
	if herr != nil {
		return "", "", inputError("The URL %q has an invalid host name: %v.", raw, herr)
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

// normalizeEndpointHost lower-cases and punycodes a public host name. A
// leading "*." (wildcard) is allowed for http(s) and tls; an IP literal
// only for tcp.
func normalizeEndpointHost(scheme, host string) (string, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if scheme != ProtoTCP {
			return "", errString("use a host name, not an IP address")
		}
		return ip.String(), nil
	}
	wild := ""
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		if scheme == ProtoTCP {
			return "", errString("tcp endpoints cannot be wildcards")
		}
		wild, host = "*.", rest
	}
	ascii, err := idna.Lookup.ToASCII(strings.TrimSuffix(host, "."))
	if err != nil {
		return "", err
	}
	ascii = strings.ToLower(ascii)
	if again, err := idna.Lookup.ToASCII(ascii); err != nil || again != ascii {
		return "", errString("the name is not valid IDNA")
	}
	if ascii == "" || len(ascii) > 253 {
		return "", errString("the name is empty or longer than 253 characters")
	}
	for _, label := range strings.Split(ascii, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", errString("label " + label + " is empty, too long, or starts or ends with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", errString("character " + string(rune(c)) + " is not allowed")
			}
		}
	}
	return wild + ascii, nil
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
		return nil, epError(name, "%q in %s is not a CIDR such as 203.0.113.0/24 or an IP address.", s, key)
	}
	return out, nil
}
