package store

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/policy"
)

// Limits on free text, as the hosted platform's API has them
// (docs/api-compatibility.md#conventions).
const (
	MaxDescriptionBytes = 255
	MaxMetadataBytes    = 4096
	MaxNameBytes        = 255
	MaxACLRules         = 100
)

// ValidateDescription checks a description: valid UTF-8 of at most
// MaxDescriptionBytes bytes.
func ValidateDescription(s string) error {
	if len(s) > MaxDescriptionBytes || !utf8.ValidString(s) {
		return codes.NewError(codes.APIDescriptionLength,
			"The description is %d bytes; it must be valid UTF-8 of at most %d bytes.", len(s), MaxDescriptionBytes)
	}
	return nil
}

// ValidateMetadata checks metadata: valid UTF-8 of at most MaxMetadataBytes
// bytes.
func ValidateMetadata(s string) error {
	if len(s) > MaxMetadataBytes || !utf8.ValidString(s) {
		return codes.NewError(codes.APIMetadataLength,
			"The metadata is %d bytes; it must be valid UTF-8 of at most %d bytes.", len(s), MaxMetadataBytes)
	}
	return nil
}

// ValidateName checks a principal's name: valid UTF-8 of at most
// MaxNameBytes bytes, without control characters.
func ValidateName(s string) error {
	if len(s) > MaxNameBytes || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return codes.NewError(codes.APIInvalidParam,
			"The name must be at most %d bytes of printable UTF-8.", MaxNameBytes)
	}
	return nil
}

// ParseACL validates and normalises a credential's bind ACL
// (docs/access-control.md#bind-acl-syntax): each rule is "*" or "bind:"
// followed by "*", a domain, "*.<domain>" or "host:port"
// (policy.ParseBindRule). Duplicates are dropped, order is kept. It returns
// a *codes.Error with codes.ACLInvalid naming the first bad rule.
func ParseACL(rules []string) ([]string, error) {
	if len(rules) > MaxACLRules {
		return nil, codes.NewError(codes.ACLInvalid, "An ACL may hold at most %d rules; this one has %d.", MaxACLRules, len(rules))
	}
	if len(rules) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(rules))
	seen := make(map[string]bool, len(rules))
	for _, r := range rules {
		n, err := policy.ParseBindRule(r)
		if err != nil {
			return nil, codes.NewError(codes.ACLInvalid,
				"Invalid ACL rule %q: a rule is '*' or 'bind:' followed by a domain (app.example.com), a wildcard domain (*.example.com), host:port, or '*'.", truncate(r, 300))
		}
		if strings.ContainsAny(n, "\n\r") { // the storage separator; ParseBindRule never allows it
			return nil, codes.NewError(codes.ACLInvalid, "Invalid ACL rule %q.", truncate(r, 300))
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// joinACL and splitACL are the ACL's storage form: rules joined by "\n".
func joinACL(acl []string) string { return strings.Join(acl, "\n") }

func splitACL(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkID validates that id is "<prefix>_<KSUID>" with one of the prefixes.
func checkID(id string, prefixes ...string) error {
	p, _, err := ids.Split(id, "")
	if err == nil {
		for _, want := range prefixes {
			if p == want {
				return nil
			}
		}
		err = fmt.Errorf("prefix %q", p)
	}
	return codes.NewError(codes.APIInvalidID, "%q is not a valid ID here: want %s_<27 characters>.",
		truncate(id, 100), strings.Join(prefixes, "_ or ")).WithCause(err)
}

// setField applies an update's optional new value v (nil: unchanged) to dst
// and, when it differs, records it in changes (the audit payload) under key.
func setField[T comparable](dst, v *T, key string, changes map[string]any) {
	if v != nil && *v != *dst {
		*dst = *v
		changes[key] = *v
	}
}

// validateOptional checks an update's description and metadata, each when
// given (non-nil).
func validateOptional(description, metadata *string) error {
	if description != nil {
		if err := ValidateDescription(*description); err != nil {
			return err
		}
	}
	if metadata != nil {
		return ValidateMetadata(*metadata)
	}
	return nil
}
