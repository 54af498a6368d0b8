package sshserver

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/tunnel"
)

// command is the command an SSH reverse-tunnel client runs, as in
// `ssh -R 443:localhost:8080 -p 2222 HOST http --url https://app.example.com`:
// the endpoint kind, then options, as the hosted platform's SSH agent takes
// them (docs/ssh-tunnels.md).
type command struct {
	proto      string // "http", "tcp" or "tls"; "" with help
	url        string
	basicAuth  []string // USER:PASSWORD
	cidrAllow  []string
	cidrDeny   []string
	policyIDs  []string // ip_policy_ids
	proxyProto int32
	help       bool
}

// usage is written to the session for `help`, a shell, or a bad command.
const usage = `Usage: ssh -R [NAME:]PORT:LOCALHOST:LOCALPORT -p SSH_PORT HOST COMMAND [OPTIONS]

Commands:
  http   an HTTPS endpoint (-R 443:localhost:8080, or 80, or 0)
  tcp    a TCP endpoint    (-R 0:localhost:22 for a random port)
  tls    a TLS endpoint routed by SNI, passed through unterminated (-R 443:localhost:8443)

Options (after the command):
  --url URL              https://NAME.BASE, tcp://HOST:PORT (reserved) or tls://NAME.BASE
  --basic-auth USER:PASS require HTTP basic auth (http; repeatable)
  --cidr-allow CIDR      only let clients from CIDR in (repeatable)
  --cidr-deny CIDR       refuse clients from CIDR (repeatable)
  --ip-policy-id ID      also apply the rules of the account's IP policy ID (repeatable)
  --proxy-proto 1|2      send a PROXY protocol header to the upstream (tcp, tls)
  --help                 show this help
`

// parseCommand parses the exec command line of an SSH session. Words
// are split as a POSIX shell would (single and double quotes, backslash
// escapes); options take their value as the next word or after '='.
// Errors are *codes.Error with code TG_403 (options) or TG_400 (command).
func parseCommand(line string) (*command, *codes.Error) {
	words, err := splitWords(line)
	if err != nil {
		return nil, codes.NewError(codes.BindOption, "The command could not be read: %v.", err)
	}
	c := &command{}
	if len(words) == 0 {
		return nil, codes.NewError(codes.BindProto, "Give a command: http, tcp or tls.")
	}
	switch w := strings.ToLower(words[0]); w {
	case "http", "https":
		c.proto = "http"
	case "tcp", "tls":
		c.proto = w
	case "help", "--help", "-h":
		c.help = true
		return c, nil
	default:
		return nil, codes.NewError(codes.BindProto, "Unknown command %q: use http, tcp or tls.", words[0])
	}
	for i := 1; i < len(words); i++ {
		name, val, hasVal := strings.Cut(words[i], "=")
		if name == "--help" || name == "-h" {
			c.help = true
			continue
		}
		if !strings.HasPrefix(name, "--") {
			return nil, codes.NewError(codes.BindOption, "Unexpected argument %q: options start with --.", words[i])
		}
		if !hasVal {
			if i+1 >= len(words) {
				return nil, codes.NewError(codes.BindOption, "The option %s needs a value.", name)
			}
			i++
			val = words[i]
		}
		switch name {
		case "--url":
			c.url = val
		case "--basic-auth":
			u, p, ok := strings.Cut(val, ":")
			if !ok || u == "" || p == "" {
				// Never echo the value: it holds a password.
				return nil, codes.NewError(codes.BindOption, "A --basic-auth value is not of the form USER:PASSWORD.")
			}
			c.basicAuth = append(c.basicAuth, val)
		case "--cidr-allow", "--cidr-deny":
			cidr, ok := canonicalCIDR(val)
			if !ok {
				return nil, codes.NewError(codes.BindOption, "%q in %s is not a CIDR such as 203.0.113.0/24 or an IP address.", val, name)
			}
			if name == "--cidr-allow" {
				c.cidrAllow = append(c.cidrAllow, cidr)
			} else {
				c.cidrDeny = append(c.cidrDeny, cidr)
			}
		case "--ip-policy-id":
			c.policyIDs = append(c.policyIDs, val)
		case "--proxy-proto":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 2 {
				return nil, codes.NewError(codes.BindOption, "--proxy-proto takes 1 or 2, not %q.", val)
			}
			c.proxyProto = int32(n)
		default:
			return nil, codes.NewError(codes.BindOption, "Unknown option %s. Run the command with --help for the options.", name)
		}
	}
	if len(c.basicAuth) > 0 && c.proto != "http" {
		return nil, codes.NewError(codes.BindOption, "--basic-auth applies to http endpoints only.")
	}
	if c.proxyProto != 0 && c.proto == "http" {
		return nil, codes.NewError(codes.BindOption, "--proxy-proto applies to tcp and tls endpoints only.")
	}
	return c, nil
}

func canonicalCIDR(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String(), true
	}
	return "", false
}

// splitWords splits a command line into words like a POSIX shell, without
// expansions.
func splitWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
		quote byte
	)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case quote == '"':
			switch {
			case ch == '"':
				quote = 0
			case ch == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0:
				i++
				cur.WriteByte(s[i])
			default:
				cur.WriteByte(ch)
			}
		case ch == '\'' || ch == '"':
			quote, in = ch, true
		case ch == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			in = true
		case ch == ' ' || ch == '\t' || ch == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(ch)
			in = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// normalizeBindAddr turns the bind address of a tcpip-forward request
// into a requested host name: "" means none (the client sent "", "localhost",
// "*" (all addresses), an unspecified or a loopback address, which OpenSSH
// sends by default); a name of one label is a subdomain of base. A
// wildcard name "*.example.com" is kept as the pattern: whether it may be
// bound is the edge's rule for every bind (edge.NewEndpoint,
// docs/wildcard-endpoints.md#binding). Names are lower-case punycode.
func normalizeBindAddr(addr, base string) (string, *codes.Error) {
	a := strings.TrimSuffix(strings.TrimSpace(addr), ".")
	a = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")
	switch strings.ToLower(a) {
	case "", "localhost", "*", "0.0.0.0", "::", "127.0.0.1", "::1", "ip6-localhost":
		return "", nil
	}
	if ip, err := netip.ParseAddr(a); err == nil {
		if ip.IsLoopback() || ip.IsUnspecified() {
			return "", nil
		}
		return "", codes.NewError(codes.BindURL, "The -R bind address %s is an IP address: give a name (-R NAME:443:...) or none.", addr)
	}
	h, err := policy.NormalizeDomainPattern(a)
	if err != nil {
		return "", codes.NewError(codes.BindURL, "The -R bind address %q is not a valid name: %v.", addr, policy.HostnameReason(err))
	}
	if !strings.Contains(h, ".") {
		h += "." + base
	}
	return h, nil
}

// bindOpts is Bind.Opts as an SSH command asks for them, under the keys
// tunnel.DecodeHTTPOptions and friends read.
type bindOpts struct {
	URL           string                `json:",omitempty"`
	ProxyProto    int32                 `json:",omitempty"`
	IPRestriction *tunnel.IPRestriction `json:",omitempty"`
	BasicAuth     *tunnel.BasicAuth     `json:",omitempty"`
}

// bindRequest builds the Bind an SSH command asks for, given the forward's
// requested name (normalizeBindAddr) and port, with tcpHost the edge's
// TCP host. The result holds
// basic-auth passwords: never log it.
func (c *command) bindRequest(name string, port uint32, tcpHost string) (*tunnel.Bind, *codes.Error) {
	o := bindOpts{URL: c.url, ProxyProto: c.proxyProto}
	if len(c.cidrAllow) > 0 || len(c.cidrDeny) > 0 || len(c.policyIDs) > 0 {
		o.IPRestriction = &tunnel.IPRestriction{AllowCIDRs: c.cidrAllow, DenyCIDRs: c.cidrDeny, IPPolicyIDs: c.policyIDs}
	}
	if len(c.basicAuth) > 0 {
		o.BasicAuth = &tunnel.BasicAuth{}
		for _, pair := range c.basicAuth {
			u, p, _ := strings.Cut(pair, ":")
			o.BasicAuth.Credentials = append(o.BasicAuth.Credentials, tunnel.BasicAuthCredential{Username: u, CleartextPassword: tunnel.Secret(p)})
		}
	}
	proto := c.proto
	switch c.proto {
	case "http", "tls":
		if c.proto == "http" {
			proto = "https"
			if port != 0 && port != 80 && port != 443 {
				return nil, codes.NewError(codes.BindURL, "An http endpoint takes -R 443:... (or 80, or 0), not port %d.", port)
			}
		} else if port != 0 && port != 443 {
			return nil, codes.NewError(codes.BindURL, "A tls endpoint takes -R 443:... (or 0), not port %d.", port)
		}
		if name != "" {
			want := map[string]string{"http": "https://", "tls": "tls://"}[c.proto] + name
			if o.URL == "" {
				o.URL = want
			} else if !sameHost(o.URL, name) {
				return nil, codes.NewError(codes.BindURL, "The -R bind name %s and --url %s disagree: give one of them.", name, o.URL)
			}
		}
	case "tcp":
		if o.URL == "" && (name != "" || port != 0) {
			if port == 0 {
				return nil, codes.NewError(codes.BindURL, "Give the port of the address %s: -R %s:PORT:... with a reserved address, or -R 0:... for a random one.", name, name)
			}
			host := name
			if host == "" {
				host = tcpHost
			}
			o.URL = "tcp://" + net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
		}
	}
	raw, err := json.Marshal(o)
	if err != nil {
		return nil, codes.NewError(codes.Internal, "Encoding the endpoint options failed.")
	}
	// No ID: the edge gives the endpoint a random bind ID.
	return &tunnel.Bind{Proto: proto, ForwardsTo: "ssh -R", Opts: raw}, nil
}

// sameHost reports whether the URL's host is name (both may be a
// wildcard "*.example.com").
func sameHost(rawURL, name string) bool {
	_, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		rest = rawURL
	}
	host := rest
	if h, _, err := net.SplitHostPort(rest); err == nil {
		host = h
	}
	h, err := policy.NormalizeDomainPattern(strings.TrimSpace(strings.TrimSuffix(host, "/")))
	return err == nil && h == name
}
