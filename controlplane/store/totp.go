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

// TOTP is a user's TOTP authenticator (RFC 6238).
type TOTP struct {
	Secret    string // base32, the HMAC key
	Confirmed bool   // a first code was given; only then is it asked at sign-in
	LastStep  int64  // the time step of the last code accepted
}

// GetTOTP returns user userID's TOTP authenticator, or ErrNotFound.
func (s *Store) GetTOTP(ctx context.Context, userID string) (*TOTP, error) {
	var o TOTP
	err := s.rdb.QueryRowContext(ctx, `SELECT secret, confirmed, last_step FROM user_totp WHERE user_id = $1`, userID).
		Scan(&o.Secret, &o.Confirmed, &o.LastStep)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("TOTP of %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading TOTP of %s: %w", userID, err)
	}
	return &o, nil
}

// StartTOTP stores an unconfirmed TOTP secret for user userID, replacing
// an unconfirmed one (an enrolment started again). A confirmed
// authenticator must be removed first (*codes.Error codes.TOTPState).
// Audited as user_totp_started.v0.
func (s *Store) StartTOTP(ctx context.Context, actor Actor, userID, secret string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM users WHERE id = $1`, userID, "user"); err != nil {
			return err
		}
		var confirmed bool
		err := t.queryRow(ctx, `SELECT confirmed FROM user_totp WHERE user_id = $1`, userID).Scan(&confirmed)
		switch {
		case err == nil && confirmed:
			return codes.NewError(codes.TOTPState, "You have an authenticator already: remove it first to enrol another.")
		case err == nil:
			if _, err := t.exec(ctx, `DELETE FROM user_totp WHERE user_id = $1`, userID); err != nil {
				return fmt.Errorf("replacing TOTP of %s: %w", userID, err)
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("reading TOTP of %s: %w", userID, err)
		}
		if _, err := t.exec(ctx, `INSERT INTO user_totp (user_id, secret, confirmed, last_step, created_at)
			VALUES ($1, $2, $3, 0, $4)`, userID, secret, false, t.stamp()); err != nil {
			return fmt.Errorf("storing TOTP of %s: %w", userID, err)
		}
		t.audit("user_totp_started.v0", actor.AccountID, userID, nil)
		return nil
	})
	return err
}

// UseTOTPStep records that a code of time step step of user userID's
// authenticator was accepted, confirming the authenticator when confirm
// is set (enrolment). It succeeds only when step is after the last step
// accepted, in one statement, so of two concurrent sign-ins with the same
// code one wins and the other gets *codes.Error codes.TOTPInvalid (RFC
// 6238 §5.2: a code is accepted once). Audited as user_totp_confirmed.v0
// when it confirms; a sign-in's code is audited with the sign-in.
func (s *Store) UseTOTPStep(ctx context.Context, actor Actor, userID string, step int64, confirm bool) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		q := `UPDATE user_totp SET last_step = $2 WHERE user_id = $1 AND last_step < $2 AND confirmed`
		if confirm {
			q = `UPDATE user_totp SET last_step = $2, confirmed = TRUE WHERE user_id = $1 AND last_step < $2 AND NOT confirmed`
		}
		res, err := t.exec(ctx, q, userID, step)
		if err != nil {
			return fmt.Errorf("recording TOTP step of %s: %w", userID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return codes.NewError(codes.TOTPInvalid, "That code was used already. Wait for the next code of your authenticator app.")
		}
		if confirm {
			t.audit("user_totp_confirmed.v0", actor.AccountID, userID, nil)
		} else {
			t.operational = true // a sign-in records it; no audit event of its own
		}
		return nil
	})
	return err
}

// DeleteTOTP removes user userID's authenticator (user_totp_deleted.v0);
// ErrNotFound when there is none.
func (s *Store) DeleteTOTP(ctx context.Context, actor Actor, userID string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		res, err := t.exec(ctx, `DELETE FROM user_totp WHERE user_id = $1`, userID)
		if err != nil {
			return fmt.Errorf("deleting TOTP of %s: %w", userID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("TOTP of %s: %w", userID, ErrNotFound)
		}
		t.audit("user_totp_deleted.v0", actor.AccountID, userID, nil)
		return nil
	})
	return err
}

// SignInChallenge is a sign-in whose password was right and that waits for
// the user's TOTP code.
type SignInChallenge struct {
	ID        string // sic_<KSUID>
	UserID    string
	ClientIP  string
	Attempts  int // wrong codes so far
	ExpiresAt time.Time
}

// MaxChallengeAttempts is how many wrong TOTP codes end a pending sign-in:
// the password must then be given again (and is throttled again).
const MaxChallengeAttempts = 5

// CreateSignInChallenge records a pending sign-in of user userID that
// lasts ttl and returns its token ("<KSUID>_<secret>", for a cookie; only
// the secret's SHA-256 is stored). Expired challenges are purged in the
// same unit of work, which writes no audit event: the sign-in's outcome
// is audited.
func (s *Store) CreateSignInChallenge(ctx context.Context, userID, clientIP string, ttl time.Duration) (*SignInChallenge, authn.Token, error) {
	var (
		c   *SignInChallenge
		tok authn.Token
	)
	_, err := s.update(ctx, SystemActor, func(ctx context.Context, t *tx) error {
		t.operational = true
		if _, err := t.exec(ctx, `DELETE FROM signin_challenges WHERE expires_at < $1`, t.stamp()); err != nil {
			return fmt.Errorf("purging sign-in challenges: %w", err)
		}
		id, token, hash := authn.NewCredential(ids.PrefixSignInChallenge)
		c = &SignInChallenge{ID: id, UserID: userID, ClientIP: clientIP, ExpiresAt: fromMicros(t.now.Add(ttl).UnixMicro())}
		if _, err := t.exec(ctx, `INSERT INTO signin_challenges (id, secret_hash, user_id, client_ip, attempts, created_at, expires_at)
			VALUES ($1, $2, $3, $4, 0, $5, $6)`, id, hash, userID, clientIP, t.stamp(), c.ExpiresAt.UnixMicro()); err != nil {
			return fmt.Errorf("creating sign-in challenge: %w", err)
		}
		tok = token
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return c, tok, nil
}

// LookupSignInChallenge returns the pending sign-in token names when its
// secret matches (constant time) and it has not expired, else ErrNotFound.
func (s *Store) LookupSignInChallenge(ctx context.Context, token string) (*SignInChallenge, error) {
	kid, secret, err := authn.ParseToken(token)
	if err != nil {
		return nil, fmt.Errorf("sign-in challenge: %w", ErrNotFound)
	}
	c := SignInChallenge{ID: ids.PrefixSignInChallenge + "_" + kid}
	var (
		hash    string
		expires int64
	)
	err = s.rdb.QueryRowContext(ctx, `SELECT secret_hash, user_id, client_ip, attempts, expires_at FROM signin_challenges WHERE id = $1`, c.ID).
		Scan(&hash, &c.UserID, &c.ClientIP, &c.Attempts, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sign-in challenge %s: %w", c.ID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading sign-in challenge %s: %w", c.ID, err)
	}
	c.ExpiresAt = fromMicros(expires)
	if !authn.SecretMatches(secret, hash) || !s.now().Before(c.ExpiresAt) || c.Attempts >= MaxChallengeAttempts {
		return nil, fmt.Errorf("sign-in challenge %s: %w", c.ID, ErrNotFound)
	}
	return &c, nil
}

// FailSignInChallenge counts a wrong code against challenge id, deleting
// it at MaxChallengeAttempts.
func (s *Store) FailSignInChallenge(ctx context.Context, id string) error {
	_, err := s.update(ctx, SystemActor, func(ctx context.Context, t *tx) error {
		t.operational = true
		if _, err := t.exec(ctx, `UPDATE signin_challenges SET attempts = attempts + 1 WHERE id = $1`, id); err != nil {
			return fmt.Errorf("counting a wrong code: %w", err)
		}
		_, err := t.exec(ctx, `DELETE FROM signin_challenges WHERE id = $1 AND attempts >= $2`, id, MaxChallengeAttempts)
		return err
	})
	return err
}

// DeleteSignInChallenge ends a pending sign-in (its code was right, or it
// was abandoned). A missing challenge is no error.
func (s *Store) DeleteSignInChallenge(ctx context.Context, id string) error {
	_, err := s.update(ctx, SystemActor, func(ctx context.Context, t *tx) error {
		t.operational = true
		_, err := t.exec(ctx, `DELETE FROM signin_challenges WHERE id = $1`, id)
		return err
	})
	return err
}
