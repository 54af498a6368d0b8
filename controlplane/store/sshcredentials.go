package store

import (
	"context"
	"crypto/rsa"
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"golang.org/x/crypto/ssh"
)

// SSHCredentialCreate is the input of CreateSSHCredential.
type SSHCredentialCreate struct {
	OwnerID     string
	Description string
	Metadata    string
	PublicKey   string // one authorized_keys line: "ssh-ed25519 AAAA... comment"
	ACL         []string
}

// SSHCredentialUpdate is the input of UpdateSSHCredential; nil fields stay
// as they are. A non-nil empty ACL removes every rule. The key itself cannot
// change: register a new credential instead.
type SSHCredentialUpdate = CredentialUpdate

// MaxSSHKeyLineBytes bounds an authorized_keys line (an RSA 16384-bit key
// with a long comment stays well below it).
const MaxSSHKeyLineBytes = 16 << 10

// MinRSAKeyBits is the smallest RSA key accepted as a credential.
const MinRSAKeyBits = 2048

// ParseSSHPublicKey validates one OpenSSH authorized_keys line ("ssh-ed25519
// AAAA... comment", options allowed as in authorized_keys) and returns it
// trimmed with its parsed key. It refuses, with codes.SSHKeyInvalid,
// several lines, a line that does not parse, certificates (register the CA's
// key through a certificate authority instead), DSA keys and RSA keys under
// MinRSAKeyBits bits.
func ParseSSHPublicKey(s string) (string, ssh.PublicKey, error) {
	line := strings.TrimSpace(s)
	if line == "" {
		return "", nil, codes.NewError(codes.SSHKeyInvalid,
			"public_key is required: give one line as in authorized_keys, such as 'ssh-ed25519 AAAA... me@host'.")
	}
	if len(line) > MaxSSHKeyLineBytes || strings.ContainsAny(line, "\r\n") {
		return "", nil, codes.NewError(codes.SSHKeyInvalid,
			"public_key must be exactly one authorized_keys line of at most %d bytes.", MaxSSHKeyLineBytes)
	}
	key, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", nil, codes.NewError(codes.SSHKeyInvalid,
			"The public key could not be parsed: give one line as in authorized_keys, such as 'ssh-ed25519 AAAA... me@host'.").WithCause(err)
	}
	if len(rest) != 0 {
		return "", nil, codes.NewError(codes.SSHKeyInvalid, "public_key must be exactly one authorized_keys line.")
	}
	switch key.Type() {
	//lint:ignore SA1019 the constant names the weak key type this check refuses.
	case ssh.KeyAlgoDSA:
		return "", nil, codes.NewError(codes.SSHKeyInvalid,
			"DSA keys are too weak and not accepted: use an Ed25519, ECDSA or RSA (at least %d bits) key.", MinRSAKeyBits)
	case ssh.KeyAlgoRSA:
		if ck, ok := key.(ssh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() < MinRSAKeyBits {
				return "", nil, codes.NewError(codes.SSHKeyInvalid,
					"The RSA key has %d bits; keys under %d bits are not accepted. Generate one with ssh-keygen -t ed25519.", rk.N.BitLen(), MinRSAKeyBits)
			}
		}
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return "", nil, codes.NewError(codes.SSHKeyInvalid,
			"public_key is an SSH certificate; register the plain public key instead.")
	}
	return line, key, nil
}

const sshCredentialColumns = `SELECT id, account_id, owner_id, description, metadata, public_key, fingerprint, acl, created_at
	FROM ssh_credentials`

func scanSSHCredential(r scanner) (SSHCredential, error) {
	var c SSHCredential
	var created int64
	var acl string
	err := r.Scan(&c.ID, &c.AccountID, &c.OwnerID, &c.Description, &c.Metadata, &c.PublicKey, &c.Fingerprint, &acl, &created)
	c.ACL, c.CreatedAt = splitACL(acl), fromMicros(created)
	return c, err
}

// CreateSSHCredential registers an SSH public key as a credential. A key can
// be registered once across all accounts (ErrConflict otherwise), since the
// edge finds the credential by the key's fingerprint.
func (s *Store) CreateSSHCredential(ctx context.Context, actor Actor, accountID string, in SSHCredentialCreate) (*SSHCredential, error) {
	if err := ValidateDescription(in.Description); err != nil {
		return nil, err
	}
	if err := ValidateMetadata(in.Metadata); err != nil {
		return nil, err
	}
	acl, err := ParseACL(in.ACL)
	if err != nil {
		return nil, err
	}
	line, key, err := ParseSSHPublicKey(in.PublicKey)
	if err != nil {
		return nil, err
	}
	var c *SSHCredential
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.checkOwner(ctx, accountID, in.OwnerID); err != nil {
			return err
		}
		c = &SSHCredential{ID: ids.New(ids.PrefixSSHCredential), AccountID: accountID, OwnerID: in.OwnerID,
			Description: in.Description, Metadata: in.Metadata, PublicKey: line,
			Fingerprint: ssh.FingerprintSHA256(key), ACL: acl, CreatedAt: fromMicros(t.stamp())}
		if _, err := t.exec(ctx, `INSERT INTO ssh_credentials
			(id, account_id, owner_id, fingerprint, public_key, description, metadata, acl, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, c.ID, accountID, c.OwnerID, c.Fingerprint, c.PublicKey,
			c.Description, c.Metadata, joinACL(c.ACL), t.stamp()); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("SSH key %s: %w", c.Fingerprint, ErrConflict)
			}
			return fmt.Errorf("creating SSH credential: %w", err)
		}
		t.audit("ssh_credential_created.v0", accountID, c.ID, map[string]any{
			"owner_id": c.OwnerID, "fingerprint": c.Fingerprint, "acl": nonNil(c.ACL)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// GetSSHCredential returns an SSH credential of the account.
func (s *Store) GetSSHCredential(ctx context.Context, accountID, id string) (*SSHCredential, error) {
	return getByID(ctx, s.rdb, sshCredentialColumns, "SSH credential", id, accountID, scanSSHCredential)
}

// ListSSHCredentials returns one page of the account's SSH credentials,
// newest first, and whether more remain.
func (s *Store) ListSSHCredentials(ctx context.Context, accountID string, page Page) ([]SSHCredential, bool, error) {
	return listPage(ctx, s.rdb, sshCredentialColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanSSHCredential)
}

// UpdateSSHCredential changes an SSH credential's description, metadata or
// ACL. Nothing changed means no revision and no audit event.
func (s *Store) UpdateSSHCredential(ctx context.Context, actor Actor, accountID, id string, in SSHCredentialUpdate) (*SSHCredential, error) {
	acl, err := in.validate()
	if err != nil {
		return nil, err
	}
	var c *SSHCredential
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if c, err = getByID(ctx, t.sql, sshCredentialColumns, "SSH credential", id, accountID, scanSSHCredential); err != nil {
			return err
		}
		changes := in.apply(acl, &c.Description, &c.Metadata, &c.ACL)
		if len(changes) == 0 {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE ssh_credentials SET description = $1, metadata = $2, acl = $3 WHERE id = $4`,
			c.Description, c.Metadata, joinACL(c.ACL), id); err != nil {
			return fmt.Errorf("updating SSH credential %s: %w", id, err)
		}
		t.audit("ssh_credential_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DeleteSSHCredential deletes an SSH credential.
func (s *Store) DeleteSSHCredential(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.deleteOne(ctx, "ssh_credentials", "SSH credential", accountID, id); err != nil {
			return err
		}
		t.audit("ssh_credential_deleted.v0", accountID, id, map[string]any{})
		return nil
	})
	return err
}
