package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNotInvited means an identity provider signed in a user who is not a
// member of its invite-only account.
var ErrNotInvited = errors.New("store: not a member of the invite-only account")

// JITMembership is the roles a user created or added by Just-in-Time
// provisioning gets in the account: read-only developer and team roles,
// no billing, not an administrator (docs/sso.md#settings). An
// administrator raises them afterwards.
func JITMembership(accountID, userID string) Membership {
	return Membership{AccountID: accountID, UserID: userID, Developer: DeveloperRO, Team: TeamRO}
}

// SSOSignIn is the outcome of ProvisionSSOUser.
type SSOSignIn struct {
	UserID string
	// Created says the user was created; Joined that the membership was.
	Created, Joined bool
}

// ProvisionSSOUser returns the user an identity provider of accountID
// signed in as email (normalised): an existing member as they are; with
// ProvisionJIT, a user who is not a member joins with JITMembership, and
// an unknown address becomes a new user named name first; with
// ProvisionInviteOnly, a non-member is ErrNotInvited and nothing changes.
// It does not check that the user is active.
func (s *Store) ProvisionSSOUser(ctx context.Context, actor Actor, accountID, email, name string, prov SSOProvisioning) (*SSOSignIn, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if ValidateName(name) != nil || name == "" {
		name = email
	}
	out := &SSOSignIn{}
	uid, _, err := userByEmail(ctx, s.rdb, email)
	switch {
	case err == nil:
		out.UserID = uid
		if _, err := s.GetMembership(ctx, accountID, uid); err == nil {
			return out, nil
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	case !errors.Is(err, ErrNotFound):
		return nil, err
	}
	if prov != ProvisionJIT {
		return nil, fmt.Errorf("%s in %s: %w", email, accountID, ErrNotInvited)
	}
	actor.PrincipalID = "system"
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if out.UserID == "" {
			u, err := t.createUser(ctx, email, name)
			if err != nil {
				return err
			}
			out.UserID, out.Created = u.ID, true
		}
		out.Joined = true
		return t.putMembership(ctx, JITMembership(accountID, out.UserID))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UserByEmail returns the user with the (normalised) email address, or
// ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (*User, error) {
	e, err := normalizeEmail(email)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", truncate(email, 100), ErrNotFound)
	}
	id, _, err := userByEmail(ctx, s.rdb, e)
	if err != nil {
		return nil, err
	}
	return s.GetUser(ctx, id)
}

// UserAccountIDs returns the IDs of the accounts user id is a member of,
// oldest membership first.
func (s *Store) UserAccountIDs(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT account_id FROM memberships WHERE user_id = $1 ORDER BY created_at, account_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("listing memberships of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
