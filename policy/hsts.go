package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// HSTS limits (docs/tls.md#hsts).
const (
	// HSTSMaxAgeLimit is the largest max-age accepted, in seconds: two
	// years, the value hstspreload.org recommends. A longer one only
	// makes a mistake last longer.
	HSTSMaxAgeLimit = 2 * 365 * 24 * 60 * 60
	// HSTSPreloadMinAge is the smallest max-age with preload, in
	// seconds: one year, hstspreload.org's submission requirement.
	HSTSPreloadMinAge = 365 * 24 * 60 * 60
)

// HSTS is an HTTP Strict Transport Security policy (RFC 6797): the
// Strict-Transport-Security field an edge adds to HTTPS responses.
type HSTS struct {
	// MaxAge is how long a browser keeps the policy, in seconds
	// (0..HSTSMaxAgeLimit). 0 tells browsers to forget it (RFC 6797
	// §6.1.1).
	MaxAge int64
	// IncludeSubDomains extends the policy to every subdomain of the host
	// (RFC 6797 §6.1.2).
	IncludeSubDomains bool
	// Preload asks to be put in browsers' built-in lists
	// (hstspreload.org); it requires IncludeSubDomains and a MaxAge of at
	// least HSTSPreloadMinAge.
	Preload bool
}

// Errors of ParseHSTS and HSTS.Validate; the returned error wraps one and
// says what to change.
var (
	// ErrHSTSSyntax: the value is not a Strict-Transport-Security value.
	ErrHSTSSyntax = errors.New("invalid HSTS value")
	// ErrHSTSMaxAge: max-age missing, not a number, or out of range.
	ErrHSTSMaxAge = errors.New("invalid HSTS max-age")
	// ErrHSTSPreload: preload without includeSubDomains or with a max-age
	// under a year.
	ErrHSTSPreload = errors.New("invalid HSTS preload")
)

// ParseHSTS parses a Strict-Transport-Security field value (RFC 6797
// §6.1), such as "max-age=31536000; includeSubDomains; preload", and
// validates it (Validate). Directive names are case-insensitive, in any
// order, each at most once; max-age is required and may be quoted. Unlike
// a browser, which ignores directives it does not know, ParseHSTS refuses
// them: in a configuration they are typos ("includeSubdomain").
func ParseHSTS(s string) (HSTS, error) {
	var h HSTS
	var seenAge, seenSub, seenPre bool
	for part := range strings.SplitSeq(s, ";") {
		part = strings.Trim(part, " \t")
		if part == "" {
			continue
		}
		name, value, hasValue := strings.Cut(part, "=")
		name = strings.TrimRight(name, " \t")
		value = strings.TrimLeft(value, " \t")
		switch {
		case strings.EqualFold(name, "max-age"):
			if seenAge {
				return HSTS{}, fmt.Errorf("%w: max-age is given twice", ErrHSTSSyntax)
			}
			seenAge = true
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			n, err := parseDeltaSeconds(value)
			if !hasValue || err != nil {
				return HSTS{}, fmt.Errorf("%w: max-age=%q is not a number of seconds", ErrHSTSMaxAge, truncateValue(value))
			}
			h.MaxAge = n
		case strings.EqualFold(name, "includeSubDomains"):
			if seenSub || hasValue {
				return HSTS{}, fmt.Errorf("%w: includeSubDomains is given twice or with a value", ErrHSTSSyntax)
			}
			seenSub, h.IncludeSubDomains = true, true
		case strings.EqualFold(name, "preload"):
			if seenPre || hasValue {
				return HSTS{}, fmt.Errorf("%w: preload is given twice or with a value", ErrHSTSSyntax)
			}
			seenPre, h.Preload = true, true
		default:
			return HSTS{}, fmt.Errorf("%w: unknown directive %q: use max-age=SECONDS, includeSubDomains and preload", ErrHSTSSyntax, truncateValue(name))
		}
	}
	if !seenAge {
		return HSTS{}, fmt.Errorf("%w: max-age=SECONDS is required", ErrHSTSMaxAge)
	}
	return h, h.Validate()
}

// parseDeltaSeconds parses 1*DIGIT (RFC 6797 §6.1.1, delta-seconds of RFC
// 9111 §1.2.2); values past the limit are refused by Validate, so a long
// digit string saturates instead of overflowing.
func parseDeltaSeconds(s string) (int64, error) {
	if s == "" {
		return 0, strconv.ErrSyntax
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		if n <= HSTSMaxAgeLimit {
			n = n*10 + int64(c-'0')
		}
	}
	return n, nil
}

func truncateValue(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Validate checks h against Tollgate's limits: MaxAge within
// 0..HSTSMaxAgeLimit (ErrHSTSMaxAge); Preload only with IncludeSubDomains
// and MaxAge ≥ HSTSPreloadMinAge (ErrHSTSPreload), as hstspreload.org
// requires for submission.
func (h HSTS) Validate() error {
	if h.MaxAge < 0 || h.MaxAge > HSTSMaxAgeLimit {
		return fmt.Errorf("%w: max-age must be 0 to %d seconds (two years)", ErrHSTSMaxAge, HSTSMaxAgeLimit)
	}
	if h.Preload && (!h.IncludeSubDomains || h.MaxAge < HSTSPreloadMinAge) {
		return fmt.Errorf("%w: preload requires includeSubDomains and a max-age of at least %d seconds (one year)", ErrHSTSPreload, HSTSPreloadMinAge)
	}
	return nil
}

// String returns h as a Strict-Transport-Security field value in the
// canonical form ParseHSTS reads back: "max-age=N[; includeSubDomains][; preload]".
func (h HSTS) String() string {
	s := "max-age=" + strconv.FormatInt(h.MaxAge, 10)
	if h.IncludeSubDomains {
		s += "; includeSubDomains"
	}
	if h.Preload {
		s += "; preload"
	}
	return s
}

// CanonicalHSTS validates a Strict-Transport-Security value and returns
// its canonical form (HSTS.String); "" stays "" (no policy).
func CanonicalHSTS(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	h, err := ParseHSTS(s)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}
