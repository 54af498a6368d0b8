package config

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Upstream is where an endpoint's traffic goes: the local (or reachable)
// service the agent dials for every proxy stream.
type Upstream struct {
	// Scheme is "http" or "https" for an HTTP endpoint and "tcp" for TCP
	// and TLS endpoints. "https" means the agent dials with TLS.
	Scheme string
	// Host is the host name or IP literal without brackets; for an https
	// upstream it is also the TLS ServerName.
	Host string
	// Port is the decimal port.
	Port string
}

// Addr returns host:port for dialling.
func (u Upstream) Addr() string { return net.JoinHostPort(u.Host, u.Port) }

// TLS reports whether the agent dials the upstream with TLS.
func (u Upstream) TLS() bool { return u.Scheme == "https" }

// String returns the upstream as users see it: "http://localhost:8080"
// for HTTP endpoints, "localhost:22" for TCP and TLS endpoints.
func (u Upstream) String() string {
	if u.Scheme == "tcp" || u.Scheme == "" {
		return u.Addr()
	}
	return u.Scheme + "://" + u.Addr()
}

// ParseUpstream parses the upstream of an endpoint of the given kind
// ("http", "tcp" or "tls"; "https" counts as "http"). Accepted forms:
//
//	8080                       localhost:8080
//	host:8080, [::1]:8080      that host and port
//	http://host[:port]         HTTP endpoints only; port defaults to 80
//	https://host[:port]        HTTP endpoints only; dialled with TLS, port defaults to 443
//	tcp://host:port            TCP and TLS endpoints only
//
// The agent forwards bytes unchanged, so an upstream URL cannot carry a
// path, query, fragment or user info. Errors are *codes.Error with code
// TG_9002 and say which form to use.
func ParseUpstream(kind, s string) (Upstream, error) {
	kind = endpointKind(kind)
	raw := strings.TrimSpace(s)
	if raw == "" {
		return Upstream{}, invalid("The upstream is missing: give a port (8080), HOST:PORT (localhost:8080) or a URL (http://localhost:8080).")
	}
	plain := "tcp"
	if kind == ProtoHTTP {
		plain = "http"
	}
	if isAllDigits(raw) {
		if err := checkPort(raw); err != nil {
			return Upstream{}, invalid("The upstream port %q is not valid: use a number from 1 to 65535.", raw)
		}
		return Upstream{Scheme: plain, Host: "localhost", Port: raw}, nil
	}
	if strings.Contains(raw, "://") {
		return parseUpstreamURL(kind, raw)
	}
	host, port, err := net.SplitHostPort(raw)
	if err != nil {
		return Upstream{}, invalid("The upstream %q has no port: use HOST:PORT, for example localhost:8080, or a port alone.", raw)
	}
	if err := checkPort(port); err != nil {
		return Upstream{}, invalid("The upstream %q has an invalid port %q: use a number from 1 to 65535.", raw, port)
	}
	if host == "" {
		host = "localhost"
	}
	if err := checkUpstreamHost(host); err != nil {
		return Upstream{}, invalid("The upstream %q has an invalid host: %v.", raw, err)
	}
	return Upstream{Scheme: plain, Host: host, Port: port}, nil
}

func parseUpstreamURL(kind, raw string) (Upstream, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Upstream{}, invalid("The upstream URL %q cannot be parsed: use a form like http://localhost:8080.", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case kind == ProtoHTTP && (scheme == "http" || scheme == "https"):
	case kind != ProtoHTTP && scheme == "tcp":
	case kind == ProtoHTTP:
		return Upstream{}, invalid("The upstream %q of an http endpoint must be a port, HOST:PORT, http:// or https:// URL.", raw)
	default:
		return Upstream{}, invalid("The upstream %q of a %s endpoint must be a port, HOST:PORT or tcp://HOST:PORT.", raw, kind)
	}
	if u.User != nil {
		return Upstream{}, invalid("The upstream URL %q must not contain user info.", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Upstream{}, invalid("The upstream URL %q must not have a path, query or fragment: the agent forwards requests unchanged, so use %s://%s.", raw, scheme, u.Host)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return Upstream{}, invalid("The upstream URL %q has no host.", raw)
	}
	if err := checkUpstreamHost(host); err != nil {
		return Upstream{}, invalid("The upstream URL %q has an invalid host: %v.", raw, err)
	}
	switch {
	case port != "":
		if err := checkPort(port); err != nil {
			return Upstream{}, invalid("The upstream URL %q has an invalid port %q: use a number from 1 to 65535.", raw, port)
		}
	case scheme == "http":
		port = "80"
	case scheme == "https":
		port = "443"
	default:
		return Upstream{}, invalid("The upstream URL %q has no port: use tcp://HOST:PORT.", raw)
	}
	return Upstream{Scheme: scheme, Host: host, Port: port}, nil
}

// checkUpstreamHost accepts an IP literal or a host name of letters,
// digits, '-', '_' and '.' (local names such as my_service are common).
func checkUpstreamHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	if len(h) > 253 {
		return errString("the name is longer than 253 characters")
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return errString("empty or over-long label in " + strconv.Quote(h))
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return errString("character " + strconv.QuoteRune(c) + " is not allowed in a host name")
			}
		}
	}
	return nil
}

// checkPort accepts a decimal port from 1 to 65535.
func checkPort(p string) error {
	if !isAllDigits(p) || len(p) > 5 {
		return errString("not a port number")
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return errString("port out of range")
	}
	return nil
}

func isAllDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
