package authn

import (
	"bytes"

	"golang.org/x/crypto/ssh"

	"github.com/tollgate/tollgate/snapshot"
)

// VerifySSHKey finds the SSH credential of a public key in snap, by its
// SHA256 fingerprint ("SHA256:...", as ssh.FingerprintSHA256 prints it),
// and returns the identity it authenticates. When key (the key in SSH wire
// format) is not nil, the credential's key must be that one, byte for
// byte; nil skips the comparison (a key already matched once, looked up
// again by its fingerprint). Errors are ErrSSHKeyUnknown and
// ErrSSHKeyRevoked (ActiveOwner fails).
func VerifySSHKey(snap *snapshot.Snapshot, fingerprint string, key []byte) (*Identity, error) {
	cred, ok := snap.SSHCredentialByFingerprint(fingerprint)
	if !ok {
		return nil, ErrSSHKeyUnknown
	}
	if key != nil {
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cred.PublicKey))
		if err != nil || !bytes.Equal(pk.Marshal(), key) {
			return nil, ErrSSHKeyUnknown
		}
	}
	acct, owner, ok := ActiveOwner(snap, cred.AccountID, cred.OwnerID)
	if !ok {
		return nil, ErrSSHKeyRevoked
	}
	return &Identity{CredentialID: cred.ID, Account: acct, Principal: owner, ACL: cred.ACL, SSHCredential: cred}, nil
}
