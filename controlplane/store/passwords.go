package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
)

// PasswordUser is what a password sign-in needs to know of the user an
// e-mail address names (LookupPasswordUser).
type PasswordUser struct {
	UserID string
	Email  string
	Active bool
	// Hash is the argon2id PHC string of the user's password, "" when the
	// user has none (they signed in with an API key or an identity
	// provider only so far).
	Hash string
	// TOTP is whether the user has a confirmed TOTP authenticator, which
	// the sign-in then asks for after the password.
	TOTP bool
}

// LookupPasswordUser returns the user with e-mail address email (compared
// lower case) with their password hash and TOTP state, or ErrNotFound.
// Bot users have no e-mail address and are never found.
func (s *Store) LookupPasswordUser(ctx context.Context, email string) (*PasswordUser, error) {
	e, err := normalizeEmail(email)
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", truncate(email, 100), ErrNotFound)
	}
	var (
		pu   = PasswordUser{Email: e}
		hash sql.NullString
		totp sql.NullBool
	)
	err = s.rdb.QueryRowContext(ctx, `SELECT p.id, p.active, pw.hash, t.confirmed
		FROM users u JOIN principals p ON p.id = u.id
		LEFT JOIN user_passwords pw ON pw.user_id = u.id
		LEFT JOIN user_totp t ON t.user_id = u.id
		WHERE u.email = $1 AND p.kind = 'user'`, e).Scan(&pu.UserID, &pu.Active, &hash, &totp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %s: %w", e, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading user %s: %w", e, err)
	}
	pu.Hash, pu.TOTP = hash.String, totp.Valid && totp.Bool
	return &pu, nil
}

// PasswordHash returns the stored password hash of user userID, or
// ErrNotFound when they have none.
func (s *Store) PasswordHash(ctx context.Context, userID string) (string, error) {
	var h string
	err := s.rdb.QueryRowContext(ctx, `SELECT hash FROM user_passwords WHERE user_id = $1`, userID).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("password of %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("reading password of %s: %w", userID, err)
	}
	return h, nil
}

// SetPassword stores hash (authn.HashPassword) as user userID's password,
// replacing any, audited as user_password_set.v0 in actor.AccountID's log,
// and ends every other dashboard session of the user than keepSession
// (whoever knew the old password is signed out). It returns ErrNotFound
// for an ID that is not a user's (bot users have no password). The caller
// checked the password rules and, for a change, the old password.
func (s *Store) SetPassword(ctx context.Context, actor Actor, userID, hash, keepSession string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.setPassword(ctx, actor.AccountID, userID, hash, "changed"); err != nil {
			return err
		}
		return t.endSessionsOf(ctx, userID, keepSession, "password_changed")
	})
	return err
}

// setPassword upserts a password hash; reason goes to the audit event.
func (t *tx) setPassword(ctx context.Context, accountID, userID, hash, reason string) error {
	if hash == "" {
		return errors.New("store: an empty password hash")
	}
	if err := t.exists(ctx, `SELECT 1 FROM users WHERE id = $1`, userID, "user"); err != nil {
		return err
	}
	res, err := t.exec(ctx, `UPDATE user_passwords SET hash = $2, updated_at = $3 WHERE user_id = $1`, userID, hash, t.stamp())
	if err != nil {
		return fmt.Errorf("updating password of %s: %w", userID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := t.exec(ctx, `INSERT INTO user_passwords (user_id, hash, updated_at) VALUES ($1, $2, $3)`,
			userID, hash, t.stamp()); err != nil {
			return fmt.Errorf("storing password of %s: %w", userID, err)
		}
	}
	t.audit("user_password_set.v0", accountID, userID, map[string]any{"reason": reason})
	return nil
}

// RehashPassword replaces user userID's password hash old by new when it
// is still old (a sign-in found old's parameters outdated,
// authn.NeedsRehash). It is no user's action and writes no audit event.
func (s *Store) RehashPassword(ctx context.Context, userID, old, new string) error {
	_, err := s.wdb.ExecContext(ctx, `UPDATE user_passwords SET hash = $3 WHERE user_id = $1 AND hash = $2`, userID, old, new)
	return err
}

// PasswordResetTTL is how long a password reset link works.
const PasswordResetTTL = time.Hour

// PasswordReset is a one-time password reset link (pwr_...).
type PasswordReset struct {
	ID        string
	UserID    string
	Email     string
	AccountID string // the account whose administrator issued it
	CreatedBy string
	ExpiresAt time.Time
}

// CreatePasswordReset issues a one-time link that sets a new password for
// user userID, a member of accountID, and returns it with its token
// ("<KSUID>_<secret>", shown once; only the secret's SHA-256 is stored).
// The actor must administer every account the user belongs to: users are
// not owned by one account (docs/dashboard-sign-in.md), and a reset link
// opens all of them, so an administrator of one account cannot take over
// the user's others (*codes.Error codes.ResetForbidden otherwise). Earlier
// links for the user are revoked. Audited as password_reset_created.v0.
// Errors: ErrNotFound (not a member of accountID), codes.ResetForbidden.
func (s *Store) CreatePasswordReset(ctx context.Context, actor Actor, accountID, userID string) (*PasswordReset, authn.Token, error) {
	var (
		pr  *PasswordReset
		tok authn.Token
	)
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		m, err := scanMember(t.queryRow(ctx, memberColumns+` WHERE m.account_id = $1 AND m.user_id = $2`, accountID, userID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %s in account %s: %w", userID, accountID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("reading member %s: %w", userID, err)
		}
		var others int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM memberships m
			WHERE m.user_id = $1 AND NOT EXISTS (SELECT 1 FROM memberships a
				WHERE a.account_id = m.account_id AND a.user_id = $2 AND a.admin)`, userID, actor.PrincipalID).Scan(&others); err != nil {
			return fmt.Errorf("reading accounts of %s: %w", userID, err)
		}
		if others > 0 && actor.PrincipalID != SystemActor.PrincipalID {
			return codes.NewError(codes.ResetForbidden,
				"%s also belongs to %d account(s) that you do not administer, and a new password would open those too. They can change their password on their profile page, or an administrator of all their accounts can issue the link.",
				m.User.Email, others)
		}
		if _, err := t.exec(ctx, `DELETE FROM password_resets WHERE user_id = $1`, userID); err != nil {
			return fmt.Errorf("revoking earlier reset links: %w", err)
		}
		id, token, hash := authn.NewCredential(ids.PrefixPasswordReset)
		pr = &PasswordReset{ID: id, UserID: userID, Email: m.User.Email, AccountID: accountID, CreatedBy: actor.PrincipalID,
			ExpiresAt: fromMicros(t.now.Add(PasswordResetTTL).UnixMicro())}
		if _, err := t.exec(ctx, `INSERT INTO password_resets (id, user_id, account_id, secret_hash, created_by, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, userID, accountID, hash, actor.PrincipalID, t.stamp(), pr.ExpiresAt.UnixMicro()); err != nil {
			return fmt.Errorf("creating password reset: %w", err)
		}
		tok = token
		t.audit("password_reset_created.v0", accountID, id, map[string]any{"user_id": userID, "expires_at": pr.ExpiresAt})
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return pr, tok, nil
}

// resetInvalid is the one answer to every unusable reset link, so that a
// guesser learns nothing of which links exist.
func resetInvalid() error {
	return codes.NewError(codes.ResetInvalid,
		"This password reset link is not valid: it was used already, replaced by a newer one, has expired (links last one hour) or was mistyped. Ask an administrator for a new one.")
}

// LookupPasswordReset returns the reset link token names when its secret
// matches (constant time) and it has not expired; otherwise a
// *codes.Error codes.ResetInvalid.
func (s *Store) LookupPasswordReset(ctx context.Context, token string) (*PasswordReset, error) {
	pr, _, err := readReset(ctx, s.rdb, token, s.now())
	return pr, err
}

func readReset(ctx context.Context, q queryer, token string, now time.Time) (*PasswordReset, string, error) {
	kid, secret, err := authn.ParseToken(token)
	if err != nil {
		return nil, "", resetInvalid()
	}
	var (
		pr      = PasswordReset{ID: ids.PrefixPasswordReset + "_" + kid}
		hash    string
		expires int64
	)
	err = q.QueryRowContext(ctx, `SELECT r.user_id, u.email, r.account_id, r.created_by, r.secret_hash, r.expires_at
		FROM password_resets r JOIN users u ON u.id = r.user_id WHERE r.id = $1`, pr.ID).
		Scan(&pr.UserID, &pr.Email, &pr.AccountID, &pr.CreatedBy, &hash, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", resetInvalid()
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading password reset %s: %w", pr.ID, err)
	}
	pr.ExpiresAt = fromMicros(expires)
	if !authn.SecretMatches(secret, hash) || !now.Before(pr.ExpiresAt) {
		return nil, "", resetInvalid()
	}
	return &pr, hash, nil
}

// UsePasswordReset sets user's new password hash through reset link token,
// in one unit of work: the link must still be valid (codes.ResetInvalid
// otherwise), is deleted (a link works once), the password is replaced,
// and every dashboard session of the user ends (whoever knew the old
// password is signed out). Audited as password_reset_used.v0 and
// user_password_set.v0 in the issuing account's log.
func (s *Store) UsePasswordReset(ctx context.Context, token, newHash string) (*PasswordReset, error) {
	pr, _, err := readReset(ctx, s.rdb, token, s.now())
	if err != nil {
		return nil, err
	}
	actor := Actor{AccountID: pr.AccountID, PrincipalID: pr.UserID, CredentialID: pr.ID}
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		cur, _, err := readReset(ctx, t.sql, token, t.now)
		if err != nil {
			return err
		}
		if cur.UserID != pr.UserID || cur.AccountID != pr.AccountID {
			return resetInvalid()
		}
		res, err := t.exec(ctx, `DELETE FROM password_resets WHERE id = $1`, pr.ID)
		if err != nil {
			return fmt.Errorf("deleting password reset %s: %w", pr.ID, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return resetInvalid() // used concurrently
		}
		t.audit("password_reset_used.v0", pr.AccountID, pr.ID, map[string]any{"user_id": pr.UserID})
		if err := t.setPassword(ctx, pr.AccountID, pr.UserID, newHash, "reset"); err != nil {
			return err
		}
		return t.endSessionsOf(ctx, pr.UserID, "", "password_reset")
	})
	if err != nil {
		return nil, err
	}
	return pr, nil
}

// endSessionsOf deletes every dashboard session of user userID but keep,
// audited in each session's account.
func (t *tx) endSessionsOf(ctx context.Context, userID, keep, reason string) error {
	rows, err := t.query(ctx, `DELETE FROM dashboard_sessions WHERE user_id = $1 AND id <> $2 RETURNING id, account_id`, userID, keep)
	if err != nil {
		return fmt.Errorf("ending sessions of %s: %w", userID, err)
	}
	defer rows.Close()
	type ended struct{ id, account string }
	var all []ended
	for rows.Next() {
		var e ended
		if err := rows.Scan(&e.id, &e.account); err != nil {
			return fmt.Errorf("ending sessions of %s: %w", userID, err)
		}
		all = append(all, e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ending sessions of %s: %w", userID, err)
	}
	for _, e := range all {
		t.audit("dashboard_session_deleted.v0", e.account, e.id, map[string]any{"user_id": userID, "reason": reason})
	}
	return nil
}
