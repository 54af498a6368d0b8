package ids

import (
	"fmt"
	"strings"

	"github.com/segmentio/ksuid"
)

// ID prefixes. Every object ID is "<prefix>_<27-character KSUID>", so IDs
// sort by creation time. The prefixes follow the hosted platform's API
// (docs/api-compatibility.md#ids) so its API clients recognise them.
const (
	PrefixAccount        = "acct"
	PrefixUser           = "usr"
	PrefixBotUser        = "bot"
	PrefixAuthtoken      = "cr"
	PrefixAPIKey         = "ak"
	PrefixSSHCredential  = "sshcr"
	PrefixIPPolicy       = "ipp"
	PrefixIPPolicyRule   = "ipr"
	PrefixIPRestriction  = "ipx"
	PrefixReservedDomain = "rd"
	PrefixReservedAddr   = "ra"
	PrefixAgentSession   = "ts"
	PrefixEndpoint       = "ep"
	PrefixEventSub       = "esb"
	PrefixEventDest      = "ed"
	PrefixOperation      = "op"
	PrefixInvitation     = "inv"
	PrefixAuditEvent     = "ev"
	// PrefixDashboardSession names a dashboard sign-in session. The hosted
	// platform's API has no such object; ours never leaves the store.
	PrefixDashboardSession = "dsn"
	// PrefixSCIMGroup names a SCIM group of an account (docs/scim.md),
	// which grants its members roles.
	PrefixSCIMGroup = "grp"
	// PrefixPasswordReset names a one-time password reset link an
	// administrator issued (docs/dashboard-sign-in.md).
	PrefixPasswordReset = "pwr"
	// PrefixSignInChallenge names a sign-in whose password was right and
	// that waits for its TOTP code.
	PrefixSignInChallenge = "sic"
	// PrefixIdentityProvider names an account's SAML or OIDC identity
	// provider (issue 15); the hosted platform's API has no such object.
	PrefixIdentityProvider = "idp"
	// PrefixAccountDomain names an email domain an account claims.
	PrefixAccountDomain = "adom"
)

// ksuidLen is the length of a KSUID in its base62 string form.
const ksuidLen = 27

// New returns a fresh ID "<prefix>_<KSUID>". It panics only if the system
// random source fails, as crypto/rand does.
func New(prefix string) string {
	return prefix + "_" + ksuid.New().String()
}

// Split splits an ID into its prefix and KSUID part. It returns an error
// when id is not "<prefix>_<27 base62 characters>" or the prefix is not want
// (pass "" to accept any prefix).
func Split(id, want string) (prefix, suffix string, err error) {
	i := strings.LastIndexByte(id, '_')
	if i <= 0 || len(id)-i-1 != ksuidLen {
		return "", "", fmt.Errorf("malformed ID %q: want <prefix>_<27 characters>", id)
	}
	prefix, suffix = id[:i], id[i+1:]
	if want != "" && prefix != want {
		return "", "", fmt.Errorf("ID %q has prefix %q, want %q", id, prefix, want)
	}
	if _, perr := ksuid.Parse(suffix); perr != nil {
		return "", "", fmt.Errorf("malformed ID %q: %v", id, perr)
	}
	return prefix, suffix, nil
}
