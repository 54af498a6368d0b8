package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tollgate/tollgate/authn"
)

// BootstrapSpec names what Bootstrap creates.
type BootstrapSpec struct {
	AccountName string // e.g. "dev"
	Email       string // the admin user's e-mail address
	UserName    string
	Description string // description of the API key and the authtoken it creates
}

// BootstrapResult is what Bootstrap created or found. The tokens are set
// only when created is true.
type BootstrapResult struct {
	AccountID   string
	UserID      string
	APIKeyID    string // "" if the bootstrap API key was deleted since
	AuthtokenID string // "" if the bootstrap authtoken was deleted since
	APIKey      authn.Token
	Authtoken   authn.Token
}

// Bootstrap creates, in one transaction, an account, an admin user of it,
// and an API key and an authtoken owned by that user — unless a user with
// spec.Email exists already, in which case it returns the IDs it finds and
// created=false, changing nothing. Concurrent calls, from any process,
// create once.
func (s *Store) Bootstrap(ctx context.Context, spec BootstrapSpec) (res *BootstrapResult, created bool, err error) {
	email, err := normalizeEmail(spec.Email)
	if err != nil {
		return nil, false, err
	}
	for _, v := range []string{spec.AccountName, spec.UserName} {
		if err := ValidateName(v); err != nil {
			return nil, false, err
		}
	}
	if err := ValidateDescription(spec.Description); err != nil {
		return nil, false, err
	}
	res = &BootstrapResult{}
	_, err = s.update(ctx, SystemActor, func(ctx context.Context, t *tx) error {
		// The revision row lock (taken by update) serialises this check
		// with every other writer, so two processes cannot both create.
		err := t.queryRow(ctx, `SELECT id FROM users WHERE email = $1`, email).Scan(&res.UserID)
		if err == nil {
			return t.findBootstrap(ctx, spec, res)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("bootstrap: reading user: %w", err)
		}
		created = true
		acct, err := t.createAccount(ctx, spec.AccountName)
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		res.AccountID = acct.ID
		u, err := t.createUser(ctx, email, spec.UserName)
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		res.UserID = u.ID
		if err := t.putMembership(ctx, Membership{AccountID: res.AccountID, UserID: u.ID,
			Developer: DeveloperRW, Team: TeamManager, Billing: true, Admin: true}); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		k, ktok, err := t.createAPIKey(ctx, res.AccountID, APIKeyCreate{OwnerID: u.ID, Description: spec.Description})
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		a, atok, err := t.createAuthtoken(ctx, res.AccountID, AuthtokenCreate{OwnerID: u.ID, Description: spec.Description})
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		res.APIKeyID, res.APIKey, res.AuthtokenID, res.Authtoken = k.ID, ktok, a.ID, atok
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return res, created, nil
}

// findBootstrap fills res with the IDs of an earlier bootstrap.
func (t *tx) findBootstrap(ctx context.Context, spec BootstrapSpec, res *BootstrapResult) error {
	err := t.queryRow(ctx, `SELECT a.id FROM accounts a JOIN memberships m ON m.account_id = a.id
		WHERE m.user_id = $1 AND a.name = $2 ORDER BY a.id LIMIT 1`, res.UserID, spec.AccountName).Scan(&res.AccountID)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("bootstrap: user %s exists but is not a member of an account named %q: %w",
			spec.Email, spec.AccountName, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("bootstrap: reading account: %w", err)
	}
	for _, c := range []struct {
		table string
		dst   *string
	}{{"api_keys", &res.APIKeyID}, {"authtokens", &res.AuthtokenID}} {
		err := t.queryRow(ctx, `SELECT id FROM `+c.table+` WHERE owner_id = $1 AND account_id = $2 AND description = $3
			ORDER BY id LIMIT 1`, res.UserID, res.AccountID, spec.Description).Scan(c.dst)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("bootstrap: reading %s: %w", c.table, err)
		}
	}
	return nil
}
