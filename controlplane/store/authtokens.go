package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/ids"
)

// AuthtokenCreate is the input of CreateAuthtoken.
type AuthtokenCreate struct {
	OwnerID     string
	Description string
	Metadata    string
	ACL         []string // bind rules (ParseACL); empty = unrestricted
}

// AuthtokenUpdate is the input of UpdateAuthtoken; nil fields stay as they
// are. A non-nil empty ACL removes every rule.
type AuthtokenUpdate = CredentialUpdate

// CredentialUpdate is a change to an authtoken or an SSH credential: nil
// fields stay as they are.
type CredentialUpdate struct {
	Description *string
	Metadata    *string
	ACL         *[]string
}

// validate checks the fields given and returns the parsed ACL (nil when
// ACL is nil).
func (in CredentialUpdate) validate() ([]string, error) {
	if err := validateOptional(in.Description, in.Metadata); err != nil {
		return nil, err
	}
	if in.ACL == nil {
		return nil, nil
	}
	return ParseACL(*in.ACL)
}

// apply sets the fields that differ (acl is validate's result) and returns
// them as the audit event's payload; empty means nothing changed.
func (in CredentialUpdate) apply(acl []string, desc, meta *string, curACL *[]string) map[string]any {
	changes := map[string]any{}
	setField(desc, in.Description, "description", changes)
	setField(meta, in.Metadata, "metadata", changes)
	if in.ACL != nil && !slices.Equal(acl, *curACL) {
		*curACL = acl
		changes["acl"] = nonNil(acl)
	}
	return changes
}

const authtokenColumns = `SELECT id, account_id, owner_id, description, metadata, acl, created_at FROM authtokens`

func scanAuthtoken(r scanner) (Authtoken, error) {
	var a Authtoken
	var created int64
	var acl string
	err := r.Scan(&a.ID, &a.AccountID, &a.OwnerID, &a.Description, &a.Metadata, &acl, &created)
	a.ACL, a.CreatedAt = splitACL(acl), fromMicros(created)
	return a, err
}

// CreateAuthtoken creates an authtoken (tunnel credential) owned by
// in.OwnerID and returns it with its token, which is not stored and cannot be
// shown again.
func (s *Store) CreateAuthtoken(ctx context.Context, actor Actor, accountID string, in AuthtokenCreate) (*Authtoken, authn.Token, error) {
	if err := in.validate(); err != nil {
		return nil, "", err
	}
	var (
		a   *Authtoken
		tok authn.Token
	)
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		a, tok, err = t.createAuthtoken(ctx, accountID, in)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return a, tok, nil
}

// validate checks the description and metadata and normalises the ACL
// (ParseACL) in place.
func (in *AuthtokenCreate) validate() error {
	if err := ValidateDescription(in.Description); err != nil {
		return err
	}
	if err := ValidateMetadata(in.Metadata); err != nil {
		return err
	}
	acl, err := ParseACL(in.ACL)
	if err != nil {
		return err
	}
	in.ACL = acl
	return nil
}

// createAuthtoken inserts an authtoken whose ACL is already normalised.
func (t *tx) createAuthtoken(ctx context.Context, accountID string, in AuthtokenCreate) (*Authtoken, authn.Token, error) {
	if err := t.checkOwner(ctx, accountID, in.OwnerID); err != nil {
		return nil, "", err
	}
	id, tok, hash := authn.NewCredential(ids.PrefixAuthtoken)
	a := &Authtoken{ID: id, AccountID: accountID, OwnerID: in.OwnerID, Description: in.Description,
		Metadata: in.Metadata, ACL: in.ACL, CreatedAt: fromMicros(t.stamp())}
	if _, err := t.exec(ctx, `INSERT INTO authtokens (id, account_id, owner_id, secret_hash, description, metadata, acl, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, a.ID, accountID, a.OwnerID, hash, a.Description, a.Metadata,
		joinACL(a.ACL), t.stamp()); err != nil {
		return nil, "", fmt.Errorf("creating authtoken: %w", err)
	}
	t.audit("credential_created.v0", accountID, a.ID, map[string]any{
		"owner_id": a.OwnerID, "description": a.Description, "acl": nonNil(a.ACL)})
	return a, tok, nil
}

// GetAuthtoken returns an authtoken of the account (never its token).
func (s *Store) GetAuthtoken(ctx context.Context, accountID, id string) (*Authtoken, error) {
	return getByID(ctx, s.rdb, authtokenColumns, "authtoken", id, accountID, scanAuthtoken)
}

// AuthtokenExists reports whether an authtoken with this ID exists in any
// account (the API uses it to tell a caller who sent an authtoken instead of
// an API key).
func (s *Store) AuthtokenExists(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.rdb.QueryRowContext(ctx, `SELECT 1 FROM authtokens WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading authtoken %s: %w", id, err)
	}
	return true, nil
}

// ListAuthtokens returns one page of the account's authtokens, newest first,
// and whether more remain.
func (s *Store) ListAuthtokens(ctx context.Context, accountID string, page Page) ([]Authtoken, bool, error) {
	return listPage(ctx, s.rdb, authtokenColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanAuthtoken)
}

// UpdateAuthtoken changes an authtoken's description, metadata or ACL.
func (s *Store) UpdateAuthtoken(ctx context.Context, actor Actor, accountID, id string, in AuthtokenUpdate) (*Authtoken, error) {
	acl, err := in.validate()
	if err != nil {
		return nil, err
	}
	var a *Authtoken
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if a, err = getByID(ctx, t.sql, authtokenColumns, "authtoken", id, accountID, scanAuthtoken); err != nil {
			return err
		}
		changes := in.apply(acl, &a.Description, &a.Metadata, &a.ACL)
		if len(changes) == 0 {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE authtokens SET description = $1, metadata = $2, acl = $3 WHERE id = $4`,
			a.Description, a.Metadata, joinACL(a.ACL), id); err != nil {
			return fmt.Errorf("updating authtoken %s: %w", id, err)
		}
		t.audit("credential_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// DeleteAuthtoken deletes an authtoken; edges close its sessions when the
// snapshot without it arrives.
func (s *Store) DeleteAuthtoken(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.deleteOne(ctx, "authtokens", "authtoken", accountID, id); err != nil {
			return err
		}
		t.audit("credential_deleted.v0", accountID, id, map[string]any{})
		return nil
	})
	return err
}

// nonNil returns s, or an empty slice when s is nil, so JSON says [].
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
