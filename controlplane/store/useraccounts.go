package store

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
)

// founderRoles are the roles of the user who creates an account: every
// role, administrator included (docs/api-compatibility.md#roles).
func founderRoles(accountID, userID string) Membership {
	return Membership{AccountID: accountID, UserID: userID, Developer: DeveloperRW, Team: TeamManager, Billing: true, Admin: true}
}

// botUserError is the answer to a bot user where only users may act.
func botUserError(id string) error {
	return codes.NewError(codes.BotUserAccount,
		"%s is not a user: bot users belong to the one account that made them, cannot sign in and cannot create or join another account.", truncate(id, 60))
}

// CreateAccountFor creates an active account named name with user userID
// as its administrator (every role), in one unit of work audited in the
// new account's log (account_created.v0, membership_created.v0). Users may
// belong to several accounts; bot users never do (*codes.Error
// codes.BotUserAccount). Errors: ErrNotFound for an unknown user,
// name validation errors.
func (s *Store) CreateAccountFor(ctx context.Context, actor Actor, userID, name string) (*Account, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if _, _, err := ids.Split(userID, ids.PrefixUser); err != nil {
		return nil, botUserError(userID)
	}
	var a *Account
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM users WHERE id = $1`, userID, "user"); err != nil {
			return err
		}
		var err error
		if a, err = t.createAccount(ctx, name); err != nil {
			return err
		}
		return t.putMembership(ctx, founderRoles(a.ID, userID))
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// SignUp is the input of SignUp.
type SignUp struct {
	Email       string
	Name        string // the user's
	AccountName string
	// PasswordHash is the new user's password (authn.HashPassword); the
	// caller checked the password rules.
	PasswordHash string
}

// SignUp creates, in one unit of work, a user with a password and a new
// account with them as its administrator: the public sign-up of a control
// plane that allows it (tollgated --signup). The events go to the new
// account's log, attributed to the new user. It returns a
// codes.SignUpTaken conflict (ErrConflict) when the address has a user:
// they sign in and create the account from the dashboard instead.
func (s *Store) SignUp(ctx context.Context, in SignUp) (*User, *Account, error) {
	email, err := normalizeEmail(in.Email)
	if err != nil {
		return nil, nil, err
	}
	if err := ValidateName(in.Name); err != nil {
		return nil, nil, err
	}
	if err := ValidateName(in.AccountName); err != nil {
		return nil, nil, err
	}
	var (
		u *User
		a *Account
	)
	userID := ids.New(ids.PrefixUser)
	_, err = s.update(ctx, Actor{PrincipalID: userID}, func(ctx context.Context, t *tx) error {
		var err error
		if a, err = t.createAccount(ctx, in.AccountName); err != nil {
			return err
		}
		if u, err = t.insertUser(ctx, a.ID, userID, email, in.Name); err != nil {
			if errors.Is(err, ErrConflict) {
				return conflict(codes.SignUpTaken,
					"%s already has a Tollgate user. Sign in, then create another account from the account menu.", email)
			}
			return err
		}
		if err := t.setPassword(ctx, a.ID, userID, in.PasswordHash, "sign_up"); err != nil {
			return err
		}
		return t.putMembership(ctx, founderRoles(a.ID, userID))
	})
	if err != nil {
		return nil, nil, err
	}
	return u, a, nil
}

// FirstAccounts returns the accounts user userID belongs to, with their
// roles, the one they joined first first: the order in which a password
// sign-in tries them (the first is usually the account the user thinks
// of as theirs). Of a user in more than limit (at most MaxPageSize)
// accounts it considers the newest limit accounts.
func (s *Store) FirstAccounts(ctx context.Context, userID string, limit int) ([]AccountMembership, error) {
	all, _, err := s.ListAccountsOf(ctx, userID, Page{Limit: limit})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(all, func(a, b AccountMembership) int { return a.Roles.CreatedAt.Compare(b.Roles.CreatedAt) })
	return all, nil
}

// InvitationPreview is what an invitation's accept page shows before the
// invitee accepts: the account, the address and whether it has a user.
type InvitationPreview struct {
	Invitation   Invitation
	AccountName  string
	ExistingUser bool
}

// PreviewInvitation returns the invitation token names when its secret
// matches (constant time) and it has not expired, without accepting it.
// Errors: the *codes.Error of AcceptInvitation (codes.InvitationInvalid,
// codes.InvitationExpired).
func (s *Store) PreviewInvitation(ctx context.Context, token string) (*InvitationPreview, error) {
	invalid := codes.NewError(codes.InvitationInvalid,
		"The invitation token is not valid: it may have been revoked, used already, or mistyped. Ask for a new invitation.")
	kid, secret, err := authn.ParseToken(token)
	if err != nil {
		return nil, invalid
	}
	inv, hash, err := readInvitationSecret(ctx, s.rdb, ids.PrefixInvitation+"_"+kid)
	if errors.Is(err, ErrNotFound) || (err == nil && !authn.SecretMatches(secret, hash)) {
		return nil, invalid
	}
	if err != nil {
		return nil, err
	}
	if !s.now().Before(inv.ExpiresAt) {
		return nil, codes.NewError(codes.InvitationExpired,
			"The invitation to %s expired at %s. Ask for a new invitation.", inv.Email, inv.ExpiresAt.Format(time.RFC3339))
	}
	a, err := getAccount(ctx, s.rdb, inv.AccountID)
	if err != nil {
		return nil, err
	}
	_, _, uerr := userByEmail(ctx, s.rdb, inv.Email)
	if uerr != nil && !errors.Is(uerr, ErrNotFound) {
		return nil, uerr
	}
	return &InvitationPreview{Invitation: *inv, AccountName: a.Name, ExistingUser: uerr == nil}, nil
}

// ValidEmail reports whether email is a well-formed e-mail address as the
// store accepts them (any case, surrounding space ignored).
func ValidEmail(email string) bool {
	_, err := normalizeEmail(email)
	return err == nil
}
