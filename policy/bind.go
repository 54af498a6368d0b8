package policy

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// BindAllowed reports whether a credential's bind ACL permits binding target,
// where target is a lower-case hostname ("app.example.com") or a TCP address
// ("1.tcp.example.com:20002").
//
// Semantics (docs/access-control.md#bind-acls, decided where that is
// unconfirmed, and documented in the README):
//   - an empty ACL, "*" or "bind:*" allows everything;
//   - "bind:app.example.com" allows exactly that name;
//   - "bind:*.example.com" allows any name that ends in ".example.com" — one
//     or more labels deep — and the literal "*.example.com" (the wildcard
//     endpoint, docs/wildcard-endpoints.md), but not the apex "example.com";
//   - "bind:host:port" allows exactly that TCP address;
//   - rules are OR-ed: any one match allows.
//
// Rules are assumed valid (ParseBindRule checks them at creation).
func BindAllowed(acl []string, target string) bool {
	if len(acl) == 0 {
		return true
	}
	for _, rule := range acl {
		if rule == "*" {
			return true
		}
		v, ok := strings.CutPrefix(rule, "bind:")
		if !ok {
			continue
		}
		v = strings.ToLower(v)
		switch {
		case v == "*":
			return true
		case v == target:
			return true
		case strings.HasPrefix(v, "*.") && strings.HasSuffix(target, v[1:]) && len(target) > len(v)-1:
			return true
		}
	}
	return false
}

// ParseBindRule validates one ACL rule: "*" or "bind:" followed by "*", a
// hostname, "*.<hostname>", or "host:port". It returns the rule with its
// host in normal form (NormalizeHostname: lower case, punycode, no trailing
// dot), or an error that says what is wrong.
func ParseBindRule(rule string) (string, error) {
	if rule == "*" {
		return rule, nil
	}
	v, ok := strings.CutPrefix(rule, "bind:")
	if !ok {
		return "", fmt.Errorf("invalid ACL rule %q: a rule is '*' or starts with 'bind:'", rule)
	}
	if v == "*" {
		return "bind:*", nil
	}
	if host, port, err := net.SplitHostPort(v); err == nil {
		p, perr := strconv.Atoi(port)
		h, herr := NormalizeHostname(host)
		if perr != nil || p < 1 || p > 65535 || herr != nil {
			return "", fmt.Errorf("invalid ACL rule %q: the address must be host:port with a port from 1 to 65535", rule)
		}
		return "bind:" + net.JoinHostPort(h, port), nil
	}
	name, err := NormalizeDomainPattern(v)
	if err != nil {
		return "", fmt.Errorf("invalid ACL rule %q: the bind value must be a domain, '*.<domain>', or host:port", rule)
	}
	return "bind:" + name, nil
}
