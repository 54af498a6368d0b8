package authn

import (
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

// Identity is who an authenticated credential speaks for.
type Identity struct {
	CredentialID string
	Account      *snapshot.Account
	Principal    *snapshot.Principal
	ACL          []string
}

// VerifyAuthtoken checks an authtoken against snap and returns the identity
// it authenticates. Errors are ErrAuthtokenMissing, ErrAuthtokenMalformed,
// ErrAuthtokenInvalid (unknown credential or wrong secret) and
// ErrCredentialRevoked (owner or account inactive). It allocates only the
// returned Identity.
func VerifyAuthtoken(snap *snapshot.Snapshot, token string) (*Identity, error) {
	if token == "" {
		return nil, ErrAuthtokenMissing
	}
	kid, secret, err := ParseToken(token)
	if err != nil {
		return nil, ErrAuthtokenMalformed
	}
	cred, ok := snap.Authtoken(ids.PrefixAuthtoken + "_" + kid)
	if !ok || !SecretMatches(secret, cred.SecretHash) {
		return nil, ErrAuthtokenInvalid
	}
	acct, ok := snap.Account(cred.AccountID)
	if !ok || !acct.Active {
		return nil, ErrCredentialRevoked
	}
	owner, ok := snap.Principal(cred.OwnerID)
	if !ok || !owner.Active {
		return nil, ErrCredentialRevoked
	}
	return &Identity{CredentialID: cred.ID, Account: acct, Principal: owner, ACL: cred.ACL}, nil
}
