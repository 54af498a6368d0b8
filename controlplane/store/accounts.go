package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
)

// CreateAccount creates an active account.
func (s *Store) CreateAccount(ctx context.Context, actor Actor, name string) (*Account, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var a *Account
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		a, err = t.createAccount(ctx, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// createAccount inserts an active account whose name is already validated.
func (t *tx) createAccount(ctx context.Context, name string) (*Account, error) {
	a := &Account{ID: ids.New(ids.PrefixAccount), Name: name, Active: true, CreatedAt: fromMicros(t.stamp())}
	if _, err := t.exec(ctx, `INSERT INTO accounts (id, name, active, created_at) VALUES ($1, $2, $3, $4)`,
		a.ID, a.Name, a.Active, t.stamp()); err != nil {
		return nil, fmt.Errorf("creating account: %w", err)
	}
	t.audit("account_created.v0", a.ID, a.ID, map[string]any{"name": a.Name})
	return a, nil
}

const accountColumns = `SELECT id, name, active, created_at FROM accounts`

func scanAccount(r scanner) (Account, error) {
	var a Account
	var created int64
	err := r.Scan(&a.ID, &a.Name, &a.Active, &created)
	a.CreatedAt = fromMicros(created)
	return a, err
}

// getAccount reads account id through q.
func getAccount(ctx context.Context, q queryer, id string) (*Account, error) {
	return getRow(q.QueryRowContext(ctx, accountColumns+` WHERE id = $1`, id), "account", id, scanAccount)
}

// GetAccount returns an account.
func (s *Store) GetAccount(ctx context.Context, id string) (*Account, error) {
	return getAccount(ctx, s.rdb, id)
}

// SetAccountActive suspends (false) or reactivates (true) an account. A
// suspended account's credentials stop working everywhere.
func (s *Store) SetAccountActive(ctx context.Context, actor Actor, id string, active bool) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		res, err := t.exec(ctx, `UPDATE accounts SET active = $1 WHERE id = $2`, active, id)
		if err != nil {
			return fmt.Errorf("updating account %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("account %s: %w", id, ErrNotFound)
		}
		t.audit("account_updated.v0", id, id, map[string]any{"active": active})
		return nil
	})
	return err
}

// normalizeEmail lower-cases and checks an e-mail address.
func normalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || len(e) > 254 {
		return "", codes.NewError(codes.APIInvalidParam, "%q is not a valid e-mail address.", truncate(email, 100))
	}
	return e, nil
}

// CreateUser creates an active user with a unique e-mail address (stored
// lower case). It returns ErrConflict when the address is taken.
func (s *Store) CreateUser(ctx context.Context, actor Actor, email, name string) (*User, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var u *User
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		u, err = t.createUser(ctx, email, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// createUser inserts an active user with a new ID; its audit event belongs
// to no account.
func (t *tx) createUser(ctx context.Context, email, name string) (*User, error) {
	return t.insertUser(ctx, "", ids.New(ids.PrefixUser), email, name) // users.go
}

// GetUser returns a user.
func (s *Store) GetUser(ctx context.Context, id string) (*User, error) {
	var u User
	var created int64
	err := s.rdb.QueryRowContext(ctx, `SELECT p.id, u.email, p.name, p.active, p.created_at
		FROM principals p JOIN users u ON u.id = p.id WHERE p.id = $1`, id).
		Scan(&u.ID, &u.Email, &u.Name, &u.Active, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading user %s: %w", id, err)
	}
	u.CreatedAt = fromMicros(created)
	return &u, nil
}

// SetUserActive deactivates (false) or reactivates (true) a user. A
// deactivated user's credentials stop working everywhere, but are kept.
func (s *Store) SetUserActive(ctx context.Context, actor Actor, id string, active bool) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		res, err := t.exec(ctx, `UPDATE principals SET active = $1 WHERE id = $2 AND kind = 'user'`, active, id)
		if err != nil {
			return fmt.Errorf("updating user %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %s: %w", id, ErrNotFound)
		}
		t.audit("user_updated.v0", "", id, map[string]any{"active": active})
		return nil
	})
	return err
}

// DeleteUser deletes a user, their memberships and every credential they
// own, in one transaction.
func (s *Store) DeleteUser(ctx context.Context, actor Actor, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM users WHERE id = $1`, id, "user"); err != nil {
			return err
		}
		deleted, err := t.deleteCredentialsOf(ctx, id)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `DELETE FROM memberships WHERE user_id = $1`, id); err != nil {
			return fmt.Errorf("deleting memberships of %s: %w", id, err)
		}
		if _, err := t.exec(ctx, `DELETE FROM users WHERE id = $1`, id); err != nil {
			return fmt.Errorf("deleting user %s: %w", id, err)
		}
		if _, err := t.exec(ctx, `DELETE FROM principals WHERE id = $1`, id); err != nil {
			return fmt.Errorf("deleting user %s: %w", id, err)
		}
		t.audit("user_deleted.v0", "", id, map[string]any{"deleted_credentials": deleted})
		return nil
	})
	return err
}

// PutMembership adds a user to an account, or changes their roles there.
// It refuses (codes.LastAdmin) to take the administrator flag from the
// account's last active administrator.
func (s *Store) PutMembership(ctx context.Context, actor Actor, m Membership) error {
	if err := ValidateRoles(m); err != nil {
		return err
	}
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var wasAdmin bool
		err := t.queryRow(ctx, `SELECT admin FROM memberships WHERE account_id = $1 AND user_id = $2`, m.AccountID, m.UserID).Scan(&wasAdmin)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reading membership: %w", err)
		}
		if wasAdmin && !m.Admin {
			if err := t.keepsAnAdmin(ctx, m.AccountID, m.UserID); err != nil { // users.go
				return err
			}
		}
		return t.putMembership(ctx, m)
	})
	return err
}

func (t *tx) putMembership(ctx context.Context, m Membership) error {
	res, err := t.exec(ctx, `UPDATE memberships SET developer = $3, team = $4, billing = $5, admin = $6
		WHERE account_id = $1 AND user_id = $2`, m.AccountID, m.UserID, string(m.Developer), string(m.Team), m.Billing, m.Admin)
	if err != nil {
		return fmt.Errorf("updating membership: %w", err)
	}
	typ := "membership_updated.v0"
	if n, _ := res.RowsAffected(); n == 0 {
		typ = "membership_created.v0"
		if err := t.exists(ctx, `SELECT 1 FROM accounts WHERE id = $1`, m.AccountID, "account"); err != nil {
			return err
		}
		if err := t.exists(ctx, `SELECT 1 FROM users WHERE id = $1`, m.UserID, "user"); err != nil {
			return err
		}
		if _, err := t.exec(ctx, `INSERT INTO memberships (account_id, user_id, developer, team, billing, admin, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, m.AccountID, m.UserID, string(m.Developer), string(m.Team),
			m.Billing, m.Admin, t.stamp()); err != nil {
			return fmt.Errorf("creating membership: %w", err)
		}
	}
	t.audit(typ, m.AccountID, m.UserID, map[string]any{
		"developer": m.Developer, "team": m.Team, "billing": m.Billing, "admin": m.Admin})
	return nil
}

// GetMembership returns a user's membership of an account.
func (s *Store) GetMembership(ctx context.Context, accountID, userID string) (*Membership, error) {
	m := Membership{AccountID: accountID, UserID: userID}
	var created int64
	var dev, team string
	err := s.rdb.QueryRowContext(ctx, `SELECT developer, team, billing, admin, created_at FROM memberships
		WHERE account_id = $1 AND user_id = $2`, accountID, userID).Scan(&dev, &team, &m.Billing, &m.Admin, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("membership of %s in %s: %w", userID, accountID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading membership: %w", err)
	}
	m.Developer, m.Team, m.CreatedAt = DeveloperRole(dev), TeamRole(team), fromMicros(created)
	return &m, nil
}

// RemoveMembership removes a user from an account and deletes the
// credentials they own in that account: RemoveMember without a check, so
// it keeps the last administrator and deletes a user left in no account.
func (s *Store) RemoveMembership(ctx context.Context, actor Actor, accountID, userID string) error {
	_, err := s.RemoveMember(ctx, actor, accountID, userID, nil) // users.go
	return err
}

// exists returns ErrNotFound (naming what) unless q, given id, returns a row.
func (t *tx) exists(ctx context.Context, q, id, what string) error {
	var one int
	err := t.queryRow(ctx, q, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s %s: %w", what, id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", what, id, err)
	}
	return nil
}
