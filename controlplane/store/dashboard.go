package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/ids"
)

// DashboardSession is one signed-in dashboard browser. Its token (the
// cookie) is returned once by CreateDashboardSession; only the secret's
// hash is stored.
type DashboardSession struct {
	ID         string // dsn_<KSUID>
	SecretHash string
	AccountID  string
	UserID     string
	// Method is how the browser signed in.
	Method SignInMethod
	// APIKeyID is the API key the user signed in with, for Method
	// SignInAPIKey; "" otherwise.
	APIKeyID  string
	ClientIP  string // the TCP peer that signed in
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SignInMethod says how a dashboard session was signed in.
type SignInMethod string

// The ways to sign in to the dashboard.
const (
	// SignInAPIKey: a pasted API key of the user (the operator fallback).
	SignInAPIKey SignInMethod = "api_key"
	// SignInPassword: the user's email address and password.
	SignInPassword SignInMethod = "password"
	// SignInSAML: a SAML 2.0 identity provider of the account.
	SignInSAML SignInMethod = "saml"
	// SignInOIDC: an OpenID Connect identity provider of the account.
	SignInOIDC SignInMethod = "oidc"
)

// Valid reports whether m is one of the methods above.
func (m SignInMethod) Valid() bool {
	switch m {
	case SignInAPIKey, SignInPassword, SignInSAML, SignInOIDC:
		return true
	}
	return false
}

// DashboardSessionCreate is the input of CreateDashboardSession.
type DashboardSessionCreate struct {
	AccountID string
	UserID    string // a usr_ ID: bot users never sign in
	// Method is how the user signed in; "" means SignInAPIKey.
	Method SignInMethod
	// APIKeyID is required for SignInAPIKey and must be "" otherwise.
	APIKeyID string
	ClientIP string
	// TTL is how long the session lives, from now; at least one minute.
	TTL time.Duration
	// Replaces, when set, is a session the browser held (the caller
	// checked its secret) that ends in the same unit of work: sessions
	// rotate at every sign-in and account switch. A session already gone
	// is no error.
	Replaces string
}

// CreateDashboardSession opens a dashboard session and returns it with its
// token ("<KSUID>_<secret>", the cookie value), which is not stored and
// cannot be shown again. The unit of work also deletes sessions that have
// expired, and is audited as dashboard_session_created.v0 (user, client IP).
func (s *Store) CreateDashboardSession(ctx context.Context, actor Actor, in DashboardSessionCreate) (*DashboardSession, authn.Token, error) {
	if in.TTL < time.Minute {
		return nil, "", fmt.Errorf("store: dashboard session TTL %v is below one minute", in.TTL)
	}
	if _, _, err := ids.Split(in.UserID, ids.PrefixUser); err != nil {
		return nil, "", fmt.Errorf("store: a dashboard session belongs to a user, not %q", in.UserID)
	}
	if in.Method == "" {
		in.Method = SignInAPIKey
	}
	if !in.Method.Valid() {
		return nil, "", fmt.Errorf("store: unknown sign-in method %q", in.Method)
	}
	if (in.Method == SignInAPIKey) != (in.APIKeyID != "") {
		return nil, "", fmt.Errorf("store: a %s dashboard session has an API key ID only when signed in with an API key (got %q)", in.Method, in.APIKeyID)
	}
	var (
		ds  *DashboardSession
		tok authn.Token
	)
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if _, err := t.exec(ctx, `DELETE FROM dashboard_sessions WHERE expires_at < $1`, t.stamp()); err != nil {
			return fmt.Errorf("deleting expired dashboard sessions: %w", err)
		}
		id, token, hash := authn.NewCredential(ids.PrefixDashboardSession)
		ds = &DashboardSession{ID: id, SecretHash: hash, AccountID: in.AccountID, UserID: in.UserID,
			Method: in.Method, APIKeyID: in.APIKeyID, ClientIP: in.ClientIP, CreatedAt: fromMicros(t.stamp()),
			ExpiresAt: fromMicros(t.now.Add(in.TTL).UnixMicro())}
		if _, err := t.exec(ctx, `INSERT INTO dashboard_sessions
			(id, secret_hash, account_id, user_id, method, api_key_id, client_ip, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, ds.ID, hash, ds.AccountID, ds.UserID, string(ds.Method),
			ds.APIKeyID, ds.ClientIP, t.stamp(), ds.ExpiresAt.UnixMicro()); err != nil {
			return fmt.Errorf("creating dashboard session: %w", err)
		}
		tok = token
		created := map[string]any{"user_id": in.UserID, "method": string(in.Method), "api_key_id": in.APIKeyID, "client_ip": in.ClientIP}
		if in.Replaces != "" {
			var oldAccount, oldUser string
			err := t.queryRow(ctx, `DELETE FROM dashboard_sessions WHERE id = $1 RETURNING account_id, user_id`, in.Replaces).Scan(&oldAccount, &oldUser)
			switch {
			case err == nil:
				created["replaces"] = in.Replaces
				t.audit("dashboard_session_deleted.v0", oldAccount, in.Replaces,
					map[string]any{"user_id": oldUser, "reason": "replaced", "replaced_by": ds.ID, "account_id": in.AccountID})
			case !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("ending dashboard session %s: %w", in.Replaces, err)
			}
		}
		t.audit("dashboard_session_created.v0", in.AccountID, ds.ID, created)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return ds, tok, nil
}

// LookupDashboardSession returns the session id with its secret hash, for
// the caller to compare against the cookie's secret (authn.SecretMatches).
// It returns ErrNotFound for an unknown, signed-out or expired session.
func (s *Store) LookupDashboardSession(ctx context.Context, id string) (*DashboardSession, error) {
	var (
		ds               DashboardSession
		method           string
		created, expires int64
	)
	err := s.rdb.QueryRowContext(ctx, `SELECT id, secret_hash, account_id, user_id, method, api_key_id, client_ip, created_at, expires_at
		FROM dashboard_sessions WHERE id = $1`, id).
		Scan(&ds.ID, &ds.SecretHash, &ds.AccountID, &ds.UserID, &method, &ds.APIKeyID, &ds.ClientIP, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("dashboard session %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading dashboard session %s: %w", id, err)
	}
	ds.Method = SignInMethod(method)
	ds.CreatedAt, ds.ExpiresAt = fromMicros(created), fromMicros(expires)
	if !s.now().Before(ds.ExpiresAt) {
		return nil, fmt.Errorf("dashboard session %s expired at %s: %w", id, ds.ExpiresAt.Format(time.RFC3339), ErrNotFound)
	}
	return &ds, nil
}

// DeleteDashboardSession ends a session (sign-out), audited as
// dashboard_session_deleted.v0. It returns ErrNotFound when the session is
// not there (already signed out or expired and purged).
func (s *Store) DeleteDashboardSession(ctx context.Context, actor Actor, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var accountID, userID string
		err := t.queryRow(ctx, `DELETE FROM dashboard_sessions WHERE id = $1 RETURNING account_id, user_id`, id).Scan(&accountID, &userID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("dashboard session %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("deleting dashboard session %s: %w", id, err)
		}
		t.audit("dashboard_session_deleted.v0", accountID, id, map[string]any{"user_id": userID})
		return nil
	})
	return err
}
