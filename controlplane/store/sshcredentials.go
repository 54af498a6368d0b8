package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/tollgate/tollgate/config"
)

// SSHCredentialCreate is the input of CreateSSHCredential.
type SSHCredentialCreate struct {
	OwnerID     string
	Description string
	Metadata    string
	PublicKey   string // one authorized_keys line: "ssh-ed25519 AAAA... comment"
	ACL         []string
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
	line := strings.TrimSpace(in.PublicKey)
	if len(line) > 16<<10 || strings.ContainsAny(line, "\r\n") {
		return nil, config.NewError(config.CodeAPIInvalidParam, "The public key must be one authorized_keys line.")
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, config.NewError(config.CodeAPIInvalidParam,
			"The public key could not be parsed: give one line as in authorized_keys, such as 'ssh-ed25519 AAAA... me@host'.").WithCause(err)
	}
	var c *SSHCredential
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.checkOwner(ctx, accountID, in.OwnerID); err != nil {
			return err
		}
		c = &SSHCredential{ID: config.NewID(config.PrefixSSHCredential), AccountID: accountID, OwnerID: in.OwnerID,
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
	c, err := scanSSHCredential(s.rdb.QueryRowContext(ctx, sshCredentialColumns+` WHERE id = $1 AND account_id = $2`, id, accountID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("SSH credential %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading SSH credential %s: %w", id, err)
	}
	return &c, nil
}

// ListSSHCredentials returns one page of the account's SSH credentials,
// newest first, and whether more remain.
func (s *Store) ListSSHCredentials(ctx context.Context, accountID string, page Page) ([]SSHCredential, bool, error) {
	return listPage(ctx, s.rdb, sshCredentialColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanSSHCredential)
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
