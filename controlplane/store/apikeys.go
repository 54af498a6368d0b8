package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

// APIKeyCreate is the input of CreateAPIKey.
type APIKeyCreate struct {
	OwnerID     string // usr_ or bot_ of the account
	Description string
	Metadata    string
}

// APIKeyUpdate is the input of UpdateAPIKey; nil fields stay as they are.
type APIKeyUpdate struct {
	Description *string
	Metadata    *string
}

const apiKeyColumns = `SELECT id, account_id, owner_id, description, metadata, created_at FROM api_keys`

func scanAPIKey(r scanner) (APIKey, error) {
	var k APIKey
	var created int64
	err := r.Scan(&k.ID, &k.AccountID, &k.OwnerID, &k.Description, &k.Metadata, &created)
	k.CreatedAt = fromMicros(created)
	return k, err
}

// CreateAPIKey creates an API key owned by in.OwnerID and returns it with its
// token, which is not stored and cannot be shown again.
func (s *Store) CreateAPIKey(ctx context.Context, actor Actor, accountID string, in APIKeyCreate) (*APIKey, authn.Token, error) {
	if err := ValidateDescription(in.Description); err != nil {
		return nil, "", err
	}
	if err := ValidateMetadata(in.Metadata); err != nil {
		return nil, "", err
	}
	var (
		k   *APIKey
		tok authn.Token
	)
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		k, tok, err = t.createAPIKey(ctx, accountID, in)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return k, tok, nil
}

func (t *tx) createAPIKey(ctx context.Context, accountID string, in APIKeyCreate) (*APIKey, authn.Token, error) {
	if err := t.checkOwner(ctx, accountID, in.OwnerID); err != nil {
		return nil, "", err
	}
	id, tok, hash := authn.NewCredential(ids.PrefixAPIKey)
	k := &APIKey{ID: id, AccountID: accountID, OwnerID: in.OwnerID, Description: in.Description,
		Metadata: in.Metadata, CreatedAt: fromMicros(t.stamp())}
	if _, err := t.exec(ctx, `INSERT INTO api_keys (id, account_id, owner_id, secret_hash, description, metadata, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, k.ID, accountID, k.OwnerID, hash, k.Description, k.Metadata, t.stamp()); err != nil {
		return nil, "", fmt.Errorf("creating API key: %w", err)
	}
	t.audit("api_key_created.v0", accountID, k.ID, map[string]any{"owner_id": k.OwnerID, "description": k.Description})
	return k, tok, nil
}

// GetAPIKey returns an API key of the account (never its token).
func (s *Store) GetAPIKey(ctx context.Context, accountID, id string) (*APIKey, error) {
	return getByID(ctx, s.rdb, apiKeyColumns, "API key", id, accountID, scanAPIKey)
}

// ListAPIKeys returns one page of the account's API keys, newest first, and
// whether more remain.
func (s *Store) ListAPIKeys(ctx context.Context, accountID string, page Page) ([]APIKey, bool, error) {
	return listPage(ctx, s.rdb, apiKeyColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanAPIKey)
}

// UpdateAPIKey changes an API key's description or metadata.
func (s *Store) UpdateAPIKey(ctx context.Context, actor Actor, accountID, id string, in APIKeyUpdate) (*APIKey, error) {
	if err := validateOptional(in.Description, in.Metadata); err != nil {
		return nil, err
	}
	var k *APIKey
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if k, err = getByID(ctx, t.sql, apiKeyColumns, "API key", id, accountID, scanAPIKey); err != nil {
			return err
		}
		changes := map[string]any{}
		setField(&k.Description, in.Description, "description", changes)
		setField(&k.Metadata, in.Metadata, "metadata", changes)
		if len(changes) == 0 {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE api_keys SET description = $1, metadata = $2 WHERE id = $3`,
			k.Description, k.Metadata, id); err != nil {
			return fmt.Errorf("updating API key %s: %w", id, err)
		}
		t.audit("api_key_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// DeleteAPIKey deletes an API key; requests made with it fail from then on.
func (s *Store) DeleteAPIKey(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.deleteOne(ctx, "api_keys", "API key", accountID, id); err != nil {
			return err
		}
		t.audit("api_key_deleted.v0", accountID, id, map[string]any{})
		return nil
	})
	return err
}

// LookupAPIKey returns what authenticating a request with API key id needs:
// the key's secret hash and its account's and owner's state. It returns
// ErrNotFound for an unknown key.
func (s *Store) LookupAPIKey(ctx context.Context, id string) (*APIKeyAuth, error) {
	var (
		a                    APIKeyAuth
		kind                 string
		dev, team            sql.NullString
		billing, admin, memb sql.NullBool
		membActive           sql.NullBool
	)
	err := s.rdb.QueryRowContext(ctx, `SELECT k.id, k.account_id, k.owner_id, k.secret_hash, a.active, p.kind, p.active,
			m.developer, m.team, m.billing, m.admin, m.admin IS NOT NULL, m.active
		FROM api_keys k
		JOIN accounts a ON a.id = k.account_id
		JOIN principals p ON p.id = k.owner_id
		LEFT JOIN memberships m ON m.user_id = k.owner_id AND m.account_id = k.account_id
		WHERE k.id = $1`, id).
		Scan(&a.KeyID, &a.AccountID, &a.OwnerID, &a.SecretHash, &a.AccountActive, &kind, &a.OwnerActive,
			&dev, &team, &billing, &admin, &memb, &membActive)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("API key %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up API key %s: %w", id, err)
	}
	a.OwnerKind = snapshot.PrincipalKind(kind)
	a.Roles = Membership{AccountID: a.AccountID, UserID: a.OwnerID}
	switch a.OwnerKind {
	case snapshot.PrincipalBot:
		// Bot users act as read/write developers of their account and have
		// no other role (docs/api-compatibility.md#principals).
		a.Member = true
		a.Roles.Developer, a.Roles.Team = DeveloperRW, ""
	default:
		a.Member = memb.Valid && memb.Bool
		// A user deactivated in this account (and only in it, SCIM
		// active: false) is an inactive owner here.
		a.OwnerActive = a.OwnerActive && (!membActive.Valid || membActive.Bool)
		a.Roles.Developer, a.Roles.Team = DeveloperRole(dev.String), TeamRole(team.String)
		a.Roles.Billing, a.Roles.Admin = billing.Bool, admin.Bool
	}
	return &a, nil
}

// LookupMemberAuth returns what an API key of user userID in account
// accountID would authenticate as, without a key (KeyID ""): the account's
// and the user's state, whether the user is a member, and their roles. A
// dashboard session signed in without an API key (a password or an
// identity provider) acts with it. It returns ErrNotFound when the account
// or the user does not exist; a user who is not a member has Member false.
func (s *Store) LookupMemberAuth(ctx context.Context, accountID, userID string) (*APIKeyAuth, error) {
	var (
		a                    = APIKeyAuth{AccountID: accountID, OwnerID: userID}
		kind                 string
		dev, team            sql.NullString
		billing, admin, memb sql.NullBool
		membActive           sql.NullBool
	)
	err := s.rdb.QueryRowContext(ctx, `SELECT a.active, p.kind, p.active,
			m.developer, m.team, m.billing, m.admin, m.admin IS NOT NULL, m.active
		FROM accounts a
		JOIN principals p ON p.id = $2
		LEFT JOIN memberships m ON m.user_id = p.id AND m.account_id = a.id
		WHERE a.id = $1`, accountID, userID).
		Scan(&a.AccountActive, &kind, &a.OwnerActive, &dev, &team, &billing, &admin, &memb, &membActive)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %s in account %s: %w", userID, accountID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user %s in account %s: %w", userID, accountID, err)
	}
	a.OwnerKind = snapshot.PrincipalKind(kind)
	if a.OwnerKind != snapshot.PrincipalUser {
		return nil, fmt.Errorf("store: %s is not a user: %w", userID, ErrNotFound)
	}
	a.Member = memb.Valid && memb.Bool
	// Deactivated in this account (SCIM active: false), as LookupAPIKey.
	a.OwnerActive = a.OwnerActive && (!membActive.Valid || membActive.Bool)
	a.Roles = Membership{AccountID: accountID, UserID: userID,
		Developer: DeveloperRole(dev.String), Team: TeamRole(team.String), Billing: billing.Bool, Admin: admin.Bool}
	return &a, nil
}
