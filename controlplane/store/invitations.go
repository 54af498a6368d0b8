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

// InvitationTTL is how long an invitation can be accepted after it was
// created. An expired invitation stays listed until it is deleted or the
// address is invited again.
const InvitationTTL = 7 * 24 * time.Hour

// Invitation is an offer to join an account with given roles, addressed to
// an e-mail address (inv_...). Tollgate sends no e-mail: the inviter passes
// on the accept token that CreateInvitation returns once.
type Invitation struct {
	ID        string
	AccountID string
	Email     string // lower case
	Developer DeveloperRole
	Team      TeamRole
	Billing   bool
	Admin     bool
	InvitedBy string // the usr_ (or "system") who created it
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Roles returns the membership the invitation grants to userID.
func (inv *Invitation) Roles(userID string) Membership {
	return Membership{AccountID: inv.AccountID, UserID: userID, Developer: inv.Developer, Team: inv.Team,
		Billing: inv.Billing, Admin: inv.Admin}
}

// InvitationCreate is the input of CreateInvitation.
type InvitationCreate struct {
	Email     string
	Developer DeveloperRole
	Team      TeamRole
	Billing   bool
	Admin     bool
}

// InvitationCheck is an authorisation rule that DeleteInvitation runs inside
// its transaction on the invitation; a non-nil error refuses the deletion
// and is returned as is.
type InvitationCheck func(inv *Invitation) error

// Acceptance is what AcceptInvitation did: the member it made, the
// account, and the API key it created for them, with its token (shown
// once).
type Acceptance struct {
	Member      Member
	Account     Account
	UserCreated bool // false when the e-mail address belonged to a user already
	APIKey      APIKey
	Token       authn.Token
}

const invitationColumns = `SELECT id, account_id, email, developer, team, billing, admin, invited_by, created_at, expires_at
	FROM invitations`

func scanInvitation(r scanner) (Invitation, error) {
	var (
		inv              Invitation
		dev, team        string
		created, expires int64
	)
	err := r.Scan(&inv.ID, &inv.AccountID, &inv.Email, &dev, &team, &inv.Billing, &inv.Admin, &inv.InvitedBy, &created, &expires)
	inv.Developer, inv.Team = DeveloperRole(dev), TeamRole(team)
	inv.CreatedAt, inv.ExpiresAt = fromMicros(created), fromMicros(expires)
	return inv, err
}

// CreateInvitation invites an e-mail address to an account with the given
// roles and returns the invitation with its accept token
// ("<KSUID>_<secret>", where inv_<KSUID> is the invitation's ID), which is
// not stored (only the secret's SHA-256 is) and cannot be shown again. It
// refuses (codes.InvitationExists, an ErrConflict) an address that is a
// member of the account or has a pending invitation to it; an expired
// invitation to the address is replaced. The invitation is attributed to
// actor.PrincipalID.
func (s *Store) CreateInvitation(ctx context.Context, actor Actor, accountID string, in InvitationCreate) (*Invitation, authn.Token, error) {
	email, err := normalizeEmail(in.Email)
	if err != nil {
		return nil, "", err
	}
	if err := ValidateRoles(Membership{Developer: in.Developer, Team: in.Team}); err != nil {
		return nil, "", err
	}
	var (
		inv *Invitation
		tok authn.Token
	)
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM accounts WHERE id = $1`, accountID, "account"); err != nil {
			return err
		}
		var one int
		err := t.queryRow(ctx, `SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
			WHERE m.account_id = $1 AND u.email = $2`, accountID, email).Scan(&one)
		if err == nil {
			return conflict(codes.InvitationExists, "%s is a member of this account already: change their roles with PATCH /users/{id}.", email)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reading members: %w", err)
		}
		old, err := scanInvitation(t.queryRow(ctx, invitationColumns+` WHERE account_id = $1 AND email = $2`, accountID, email))
		switch {
		case err == nil && t.now.Before(old.ExpiresAt):
			return conflict(codes.InvitationExists,
				"%s has a pending invitation to this account (%s): delete it first to invite again.", email, old.ID)
		case err == nil:
			if _, err := t.exec(ctx, `DELETE FROM invitations WHERE id = $1`, old.ID); err != nil {
				return fmt.Errorf("deleting expired invitation %s: %w", old.ID, err)
			}
			t.audit("invitation_deleted.v0", accountID, old.ID, map[string]any{"reason": "expired_replaced"})
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("reading invitations: %w", err)
		}
		id, token, hash := authn.NewCredential(ids.PrefixInvitation)
		inv = &Invitation{ID: id, AccountID: accountID, Email: email, Developer: in.Developer, Team: in.Team,
			Billing: in.Billing, Admin: in.Admin, InvitedBy: actor.PrincipalID,
			CreatedAt: fromMicros(t.stamp()), ExpiresAt: fromMicros(t.now.Add(InvitationTTL).UnixMicro())}
		if _, err := t.exec(ctx, `INSERT INTO invitations
			(id, account_id, email, developer, team, billing, admin, secret_hash, invited_by, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			inv.ID, accountID, email, string(inv.Developer), string(inv.Team), inv.Billing, inv.Admin, hash,
			inv.InvitedBy, t.stamp(), inv.ExpiresAt.UnixMicro()); err != nil {
			if isUniqueViolation(err) {
				return conflict(codes.InvitationExists, "%s has a pending invitation to this account.", email)
			}
			return fmt.Errorf("creating invitation: %w", err)
		}
		tok = token
		t.audit("invitation_created.v0", accountID, inv.ID, map[string]any{"email": email,
			"developer": inv.Developer, "team": inv.Team, "billing": inv.Billing, "admin": inv.Admin,
			"expires_at": inv.ExpiresAt})
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return inv, tok, nil
}

// GetInvitation returns an invitation of the account (never its token).
func (s *Store) GetInvitation(ctx context.Context, accountID, id string) (*Invitation, error) {
	return getByID(ctx, s.rdb, invitationColumns, "invitation", id, accountID, scanInvitation)
}

// ListInvitations returns one page of the account's invitations, expired
// ones included, newest first, and whether more remain.
func (s *Store) ListInvitations(ctx context.Context, accountID string, page Page) ([]Invitation, bool, error) {
	return listPage(ctx, s.rdb, invitationColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanInvitation)
}

// DeleteInvitation revokes an invitation after check (nil allows) approves
// it; its accept token stops working at once.
func (s *Store) DeleteInvitation(ctx context.Context, actor Actor, accountID, id string, check InvitationCheck) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		inv, err := getByID(ctx, t.sql, invitationColumns, "invitation", id, accountID, scanInvitation)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(inv); err != nil {
				return err
			}
		}
		if err := t.deleteOne(ctx, "invitations", "invitation", accountID, id); err != nil {
			return err
		}
		t.audit("invitation_deleted.v0", accountID, id, map[string]any{"email": inv.Email})
		return nil
	})
	return err
}

// InvitationAccept is the input of AcceptInvitation.
type InvitationAccept struct {
	// Token is the accept token CreateInvitation returned.
	Token string
	// Name is the new user's name; required when the invited address
	// belongs to no user yet, ignored otherwise.
	Name string
	// Description is the description of the API key created.
	Description string
	// ExistingUserID must name the user who owns the invited address when
	// there is one: the caller proves to be that user (see the API's
	// accept operation). When it is empty and the address belongs to a
	// user, AcceptInvitation returns ErrExistingUser.
	ExistingUserID string
	// PasswordHash, when set, becomes the password of the user the
	// acceptance creates (authn.HashPassword; the caller checked the
	// password rules). It is ignored for an existing user.
	PasswordHash string
}

// errAcceptRace makes AcceptInvitation retry: the user owning the address
// changed between its first look and its unit of work.
var errAcceptRace = errors.New("store: user changed during acceptance")

// AcceptInvitation accepts an invitation, in one unit of work: it creates
// the user if the address is new (or, with in.ExistingUserID, adds the
// existing user), gives them the invitation's roles in its account, deletes
// the invitation, and creates an API key owned by them in that account,
// returned once with its token. The token's secret is compared in constant
// time. The unit of work is attributed to the user, with the invitation as
// credential. Errors: *codes.Error codes.InvitationInvalid (unknown,
// revoked, accepted or mistyped token), codes.InvitationExpired,
// codes.APIInvalidParam (a name is needed), codes.APIPrincipalInactive (the
// existing user is deactivated), ErrExistingUser, and a codes.InvitationExists
// conflict (the user is a member already).
func (s *Store) AcceptInvitation(ctx context.Context, in InvitationAccept) (*Acceptance, error) {
	if err := ValidateDescription(in.Description); err != nil {
		return nil, err
	}
	invalid := codes.NewError(codes.InvitationInvalid,
		"The invitation token is not valid: it may have been revoked, used already, or mistyped. Ask for a new invitation.")
	kid, secret, err := authn.ParseToken(in.Token)
	if err != nil {
		return nil, invalid
	}
	id := ids.PrefixInvitation + "_" + kid
	for attempt := 0; ; attempt++ {
		acc, err := s.acceptOnce(ctx, id, secret, in, invalid)
		if errors.Is(err, errAcceptRace) && attempt < 2 {
			continue
		}
		return acc, err
	}
}

func (s *Store) acceptOnce(ctx context.Context, id, secret string, in InvitationAccept, invalid error) (*Acceptance, error) {
	inv, hash, err := readInvitationSecret(ctx, s.rdb, id)
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
	userID, active, err := userByEmail(ctx, s.rdb, inv.Email)
	existing := err == nil
	switch {
	case existing && in.ExistingUserID == "":
		return nil, fmt.Errorf("accepting %s for %s: %w", id, inv.Email, ErrExistingUser)
	case existing && in.ExistingUserID != userID:
		return nil, invalid // a user proving to be someone else: the token is not theirs
	case existing && !active:
		return nil, codes.NewError(codes.APIPrincipalInactive,
			"The user %s is deactivated; an administrator must reactivate them before they join another account.", userID)
	case errors.Is(err, ErrNotFound):
		if in.ExistingUserID != "" {
			return nil, invalid
		}
		if in.Name == "" {
			return nil, codes.NewError(codes.APIInvalidParam, "Give your name: %s is new to this control plane.", inv.Email)
		}
		if err := ValidateName(in.Name); err != nil {
			return nil, err
		}
		userID = ids.New(ids.PrefixUser)
	case err != nil:
		return nil, err
	}
	acc := &Acceptance{UserCreated: !existing}
	actor := Actor{AccountID: inv.AccountID, PrincipalID: userID, CredentialID: inv.ID}
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		cur, curHash, err := readInvitationSecret(ctx, t.sql, id)
		if errors.Is(err, ErrNotFound) || (err == nil && curHash != hash) {
			return invalid // accepted or revoked meanwhile
		}
		if err != nil {
			return err
		}
		if !t.now.Before(cur.ExpiresAt) {
			return codes.NewError(codes.InvitationExpired,
				"The invitation to %s expired at %s. Ask for a new invitation.", cur.Email, cur.ExpiresAt.Format(time.RFC3339))
		}
		nowID, _, err := userByEmail(ctx, t.sql, cur.Email)
		switch {
		case err == nil && nowID != userID, errors.Is(err, ErrNotFound) && existing:
			return errAcceptRace
		case errors.Is(err, ErrNotFound):
			if _, err := t.insertUser(ctx, cur.AccountID, userID, cur.Email, in.Name); err != nil {
				return err
			}
			if in.PasswordHash != "" {
				if err := t.setPassword(ctx, cur.AccountID, userID, in.PasswordHash, "invitation"); err != nil {
					return err
				}
			}
		case err != nil:
			return err
		}
		var one int
		err = t.queryRow(ctx, `SELECT 1 FROM memberships WHERE account_id = $1 AND user_id = $2`, cur.AccountID, userID).Scan(&one)
		if err == nil {
			return conflict(codes.InvitationExists, "%s is a member of this account already.", cur.Email)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reading membership: %w", err)
		}
		if err := t.putMembership(ctx, cur.Roles(userID)); err != nil {
			return err
		}
		if _, err := t.exec(ctx, `DELETE FROM invitations WHERE id = $1`, id); err != nil {
			return fmt.Errorf("deleting invitation %s: %w", id, err)
		}
		t.audit("invitation_accepted.v0", cur.AccountID, id, map[string]any{"email": cur.Email, "user_id": userID})
		desc := in.Description
		if desc == "" {
			desc = "created by accepting invitation " + id
		}
		k, tok, err := t.createAPIKey(ctx, cur.AccountID, APIKeyCreate{OwnerID: userID, Description: desc})
		if err != nil {
			return err
		}
		acc.APIKey, acc.Token = *k, tok
		m, err := scanMember(t.queryRow(ctx, memberColumns+` WHERE m.account_id = $1 AND m.user_id = $2`, cur.AccountID, userID))
		if err != nil {
			return fmt.Errorf("reading member %s: %w", userID, err)
		}
		acc.Member = m
		if acc.Account, err = scanAccount(t.queryRow(ctx, accountColumns+` WHERE id = $1`, cur.AccountID)); err != nil {
			return fmt.Errorf("reading account %s: %w", cur.AccountID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return acc, nil
}

// readInvitationSecret reads an invitation by ID with its secret hash.
func readInvitationSecret(ctx context.Context, q queryer, id string) (*Invitation, string, error) {
	var (
		inv              Invitation
		dev, team, hash  string
		created, expires int64
	)
	err := q.QueryRowContext(ctx, `SELECT id, account_id, email, developer, team, billing, admin, invited_by,
		created_at, expires_at, secret_hash FROM invitations WHERE id = $1`, id).
		Scan(&inv.ID, &inv.AccountID, &inv.Email, &dev, &team, &inv.Billing, &inv.Admin, &inv.InvitedBy,
			&created, &expires, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("invitation %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading invitation %s: %w", id, err)
	}
	inv.Developer, inv.Team = DeveloperRole(dev), TeamRole(team)
	inv.CreatedAt, inv.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &inv, hash, nil
}
