package authn

import (
	"errors"

	"github.com/tollgate/tollgate/ids"
)

// API key denials returned by ParseAPIKey and CheckAPIKey. They are plain
// sentinels: the REST API and the dashboard each answer them with their own
// status, code and words.
var (
	// ErrAPIKeyID means an API key's ID (ak_...) was sent instead of the
	// key itself.
	ErrAPIKeyID = errors.New("authn: an API key ID, not an API key")
	// ErrAPIKeyInvalid means the key's secret does not match.
	ErrAPIKeyInvalid = errors.New("authn: API key not valid")
	// ErrAccountInactive means the credential's account is suspended.
	ErrAccountInactive = errors.New("authn: account suspended")
	// ErrOwnerInactive means the credential's owner is deactivated.
	ErrOwnerInactive = errors.New("authn: credential owner deactivated")
	// ErrNotMember means the credential's owner left its account.
	ErrNotMember = errors.New("authn: credential owner not a member of the account")
)

// APIKeyState is what the store holds of an API key when it is presented:
// the hash of its secret and the state of its account and owner. API keys
// are checked against the store on every request, not against a snapshot,
// so that deleting or deactivating takes effect at once.
type APIKeyState struct {
	SecretHash    string
	AccountActive bool
	OwnerActive   bool
	// Member is false for a user who no longer belongs to the key's account.
	Member bool
}

// ParseAPIKey splits an API key "<KSUID>_<secret>" into the key's ID
// (ak_<KSUID>) and its secret. Errors: ErrAPIKeyID when tok is an API key's
// ID, ErrMalformed when it is not a token.
func ParseAPIKey(tok string) (keyID, secret string, err error) {
	if _, _, err := ids.Split(tok, ids.PrefixAPIKey); err == nil {
		return "", "", ErrAPIKeyID
	}
	kid, secret, err := ParseToken(tok)
	if err != nil {
		return "", "", err
	}
	return ids.PrefixAPIKey + "_" + kid, secret, nil
}

// CheckAPIKey decides whether the API key whose stored state is st, presented
// with secret, may act: the secret matches in constant time
// (ErrAPIKeyInvalid), and the owner rule holds (CheckOwnerState).
func CheckAPIKey(secret string, st APIKeyState) error {
	if !SecretMatches(secret, st.SecretHash) {
		return ErrAPIKeyInvalid
	}
	return CheckOwnerState(st.AccountActive, st.OwnerActive, st.Member)
}

// CheckOwnerState is the rule every credential obeys (ActiveOwner reads it
// from a snapshot) on flags read from the store: the account is active
// (else ErrAccountInactive), the owner is active (ErrOwnerInactive) and a
// member of the account (ErrNotMember), checked in that order.
func CheckOwnerState(accountActive, ownerActive, member bool) error {
	switch {
	case !accountActive:
		return ErrAccountInactive
	case !ownerActive:
		return ErrOwnerInactive
	case !member:
		return ErrNotMember
	}
	return nil
}
