package authn

import (
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

// Identity is who an authenticated credential speaks for, with what the
// check found in the snapshot, so that callers need not look it up again.
type Identity struct {
	CredentialID string
	Account      *snapshot.Account
	Principal    *snapshot.Principal
	ACL          []string
	// Authtoken is the authtoken credential that authenticated; nil when
	// an SSH key did.
	Authtoken *snapshot.Authtoken
	// SSHCredential is the SSH credential that authenticated; nil when an
	// authtoken did.
	SSHCredential *snapshot.SSHCredential
}

// ActiveOwner is the rule every credential obeys, in one place: the
// credential's account and its owner (the principal it belongs to) are in
// snap and active, and the owner's membership of that account is not
// deactivated (snapshot.Principal.ActiveIn). It returns them, and ok false when either is missing or
// inactive; each caller turns that into its own denial (for authtokens
// ErrCredentialRevoked, for SSH keys ErrSSHKeyRevoked).
func ActiveOwner(snap *snapshot.Snapshot, accountID, ownerID string) (acct *snapshot.Account, owner *snapshot.Principal, ok bool) {
	acct, aok := snap.Account(accountID)
	owner, pok := snap.Principal(ownerID)
	// Membership needs no check here: leaving an account deletes the
	// credentials the user owned there, in the same unit of work. A
	// membership deactivated in this account (and only in it) counts as
	// an inactive owner.
	if CheckOwnerState(aok && acct.Active, pok && owner.ActiveIn(accountID), true) != nil {
		return nil, nil, false
	}
	return acct, owner, true
}

// VerifyAuthtoken checks an authtoken against snap and returns the identity
// it authenticates. Errors are ErrAuthtokenMissing, ErrAuthtokenMalformed,
// ErrAuthtokenInvalid (unknown credential or wrong secret) and
// ErrCredentialRevoked (owner or account inactive). It allocates only the
// returned Identity.
func VerifyAuthtoken(snap *snapshot.Snapshot, token string) (*Identity, error) {
	ident, _, err := CheckAuthtoken(snap, token)
	return ident, err
}

// CheckAuthtoken is VerifyAuthtoken that also reports whether snap holds
// the credential the token names, whatever the outcome: known is false for
// a missing or malformed token and for a credential ID snap does not hold
// (which may be one created a moment ago that a newer snapshot will bring),
// and true otherwise. The token is parsed once.
func CheckAuthtoken(snap *snapshot.Snapshot, token string) (ident *Identity, known bool, err error) {
	if token == "" {
		return nil, false, ErrAuthtokenMissing
	}
	kid, secret, err := ParseToken(token)
	if err != nil {
		return nil, false, ErrAuthtokenMalformed
	}
	cred, ok := snap.Authtoken(ids.PrefixAuthtoken + "_" + kid)
	if !ok {
		return nil, false, ErrAuthtokenInvalid
	}
	if !SecretMatches(secret, cred.SecretHash) {
		return nil, true, ErrAuthtokenInvalid
	}
	ident, err = authtokenIdentity(snap, cred)
	return ident, true, err
}

// ReverifyAuthtoken re-checks, against a newer snapshot, the authtoken
// credential credentialID that authenticated with the secret whose hash is
// secretHash: the credential must still be there with the same secret (a
// rotated secret is ErrAuthtokenInvalid) and obey ActiveOwner
// (ErrCredentialRevoked). It returns the identity as snap has it now.
func ReverifyAuthtoken(snap *snapshot.Snapshot, credentialID, secretHash string) (*Identity, error) {
	cred, ok := snap.Authtoken(credentialID)
	if !ok || cred.SecretHash != secretHash {
		return nil, ErrAuthtokenInvalid
	}
	return authtokenIdentity(snap, cred)
}

func authtokenIdentity(snap *snapshot.Snapshot, cred *snapshot.Authtoken) (*Identity, error) {
	acct, owner, ok := ActiveOwner(snap, cred.AccountID, cred.OwnerID)
	if !ok {
		return nil, ErrCredentialRevoked
	}
	return &Identity{CredentialID: cred.ID, Account: acct, Principal: owner, ACL: cred.ACL, Authtoken: cred}, nil
}
