package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tollgate/tollgate/codes"
)

// Member is a user seen as a member of one account: who they are and their
// roles there.
type Member struct {
	// User is the user; User.Active is false when the user is deactivated
	// or their membership of this account is (SCIM active: false).
	User User
	// Roles are the user's roles in the account; Roles.CreatedAt is when
	// the user joined it.
	Roles Membership
}

// MemberUpdate is the input of UpdateMember; nil fields stay as they are.
type MemberUpdate struct {
	Developer *DeveloperRole
	Team      *TeamRole
	Billing   *bool
	Admin     *bool
}

// apply returns m with the update's fields set.
func (u MemberUpdate) apply(m Membership) Membership {
	if u.Developer != nil {
		m.Developer = *u.Developer
	}
	if u.Team != nil {
		m.Team = *u.Team
	}
	if u.Billing != nil {
		m.Billing = *u.Billing
	}
	if u.Admin != nil {
		m.Admin = *u.Admin
	}
	return m
}

// MemberCheck is an authorisation rule that UpdateMember and RemoveMember
// run inside their transaction on the member's current roles, so that the
// decision and the change see the same state (a member promoted to
// administrator by a concurrent request is judged as an administrator).
// A non-nil error refuses the change and is returned as is. A nil
// MemberCheck allows every change.
type MemberCheck func(current Membership) error

// AccountMembership is an account as one of its members sees it: the
// account and the member's roles in it.
type AccountMembership struct {
	Account Account
	Roles   Membership
}

// ValidateRoles checks the developer and team dimensions of m: developer rw
// or ro, team manager, invite or ro (docs/api-compatibility.md#roles).
// It returns a *codes.Error with codes.RoleInvalid.
func ValidateRoles(m Membership) error {
	switch m.Developer {
	case DeveloperRW, DeveloperRO:
	default:
		return codes.NewError(codes.RoleInvalid, "The developer role %q is not valid: use rw or ro.", truncate(string(m.Developer), 40))
	}
	switch m.Team {
	case TeamManager, TeamInvite, TeamRO:
	default:
		return codes.NewError(codes.RoleInvalid, "The team role %q is not valid: use manager, invite or ro.", truncate(string(m.Team), 40))
	}
	return nil
}

// memberFields and memberFrom make memberColumns; a query may select
// more columns between them (scimUserColumns) and scan them as extra.
const (
	memberFields = `SELECT p.id, u.email, p.name, p.active AND m.active, p.created_at,
		m.account_id, m.developer, m.team, m.billing, m.admin, m.created_at`
	memberFrom    = ` FROM memberships m JOIN principals p ON p.id = m.user_id JOIN users u ON u.id = m.user_id`
	memberColumns = memberFields + memberFrom
)

func scanMember(r scanner) (Member, error) { return scanMemberWith(r) }

// scanMemberWith scans a member and then, into extra, the columns a query
// selects after memberFields.
func scanMemberWith(r scanner, extra ...any) (Member, error) {
	var (
		m               Member
		dev, team       string
		created, joined int64
	)
	err := r.Scan(append([]any{&m.User.ID, &m.User.Email, &m.User.Name, &m.User.Active, &created,
		&m.Roles.AccountID, &dev, &team, &m.Roles.Billing, &m.Roles.Admin, &joined}, extra...)...)
	m.Roles.UserID = m.User.ID
	m.Roles.Developer, m.Roles.Team = DeveloperRole(dev), TeamRole(team)
	m.User.CreatedAt, m.Roles.CreatedAt = fromMicros(created), fromMicros(joined)
	return m, err
}

// GetMember returns a user of the account with their roles there, or
// ErrNotFound when the user is not a member of it.
func (s *Store) GetMember(ctx context.Context, accountID, userID string) (*Member, error) {
	m, err := scanMember(s.rdb.QueryRowContext(ctx, memberColumns+` WHERE m.account_id = $1 AND m.user_id = $2`, accountID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %s in account %s: %w", userID, accountID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading member %s: %w", userID, err)
	}
	return &m, nil
}

// ListMembers returns one page of the account's users with their roles,
// newest user first, and whether more remain. Bot users are not members:
// ListBotUsers lists them.
func (s *Store) ListMembers(ctx context.Context, accountID string, page Page) ([]Member, bool, error) {
	return listPage(ctx, s.rdb, memberColumns+` WHERE m.account_id = $1`, "m.user_id", []any{accountID}, page, scanMember)
}

// UpdateMember changes a member's roles in one unit of work: it reads the
// current roles, runs check on them, refuses (codes.LastAdmin, an
// ErrConflict) a change that would leave the account without an active
// administrator, and writes a membership_updated.v0 audit event. A change
// that changes nothing writes nothing. It returns the member as they are
// after the call.
func (s *Store) UpdateMember(ctx context.Context, actor Actor, accountID, userID string, in MemberUpdate, check MemberCheck) (*Member, error) {
	var m Member
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		m, err = scanMember(t.queryRow(ctx, memberColumns+` WHERE m.account_id = $1 AND m.user_id = $2`, accountID, userID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %s in account %s: %w", userID, accountID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("reading member %s: %w", userID, err)
		}
		if check != nil {
			if err := check(m.Roles); err != nil {
				return err
			}
		}
		next := in.apply(m.Roles)
		if err := ValidateRoles(next); err != nil {
			return err
		}
		if next == m.Roles {
			return nil // nothing to do: no revision, no event
		}
		if m.Roles.Admin && !next.Admin {
			if err := t.keepsAnAdmin(ctx, accountID, userID); err != nil {
				return err
			}
		}
		m.Roles = next
		return t.putMembership(ctx, next)
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// RemoveMember removes a user from an account in one unit of work: it runs
// check on the member's current roles, refuses (codes.LastAdmin) to remove the
// account's last active administrator, deletes every credential the user
// owns in that account (authtokens, API keys, SSH keys; one audit event
// each) and the membership. A user left in no account is deleted too
// (user_deleted.v0): nothing can be done with a user that belongs nowhere,
// and an invitation accepted later creates them afresh. It returns the IDs
// of the credentials deleted. Deleted credentials never come back: joining
// the account again starts without credentials.
func (s *Store) RemoveMember(ctx context.Context, actor Actor, accountID, userID string, check MemberCheck) ([]string, error) {
	var deleted []string
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		deleted, err = t.removeMember(ctx, accountID, userID, check)
		return err
	})
	if err != nil {
		return nil, err
	}
	return deleted, nil
}

func (t *tx) removeMember(ctx context.Context, accountID, userID string, check MemberCheck) ([]string, error) {
	m, err := scanMember(t.queryRow(ctx, memberColumns+` WHERE m.account_id = $1 AND m.user_id = $2`, accountID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("membership of %s in %s: %w", userID, accountID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading member %s: %w", userID, err)
	}
	if check != nil {
		if err := check(m.Roles); err != nil {
			return nil, err
		}
	}
	if m.Roles.Admin {
		if err := t.keepsAnAdmin(ctx, accountID, userID); err != nil {
			return nil, err
		}
	}
	deleted := []string{}
	for _, tbl := range credentialTables {
		ids, err := t.deleteReturningIDs(ctx, `DELETE FROM `+tbl.name+` WHERE owner_id = $1 AND account_id = $2 RETURNING id`, userID, accountID)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			t.audit(tbl.event+"_deleted.v0", accountID, id, map[string]any{"reason": "owner_removed", "owner_id": userID})
		}
		deleted = append(deleted, ids...)
	}
	if _, err := t.exec(ctx, `DELETE FROM memberships WHERE account_id = $1 AND user_id = $2`, accountID, userID); err != nil {
		return nil, fmt.Errorf("deleting membership: %w", err)
	}
	t.audit("membership_deleted.v0", accountID, userID, map[string]any{"deleted_credentials": deleted})
	var others int
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM memberships WHERE user_id = $1`, userID).Scan(&others); err != nil {
		return nil, fmt.Errorf("counting memberships of %s: %w", userID, err)
	}
	if others == 0 {
		// Credentials live in accounts the user belongs to, so none remain;
		// the principal row cascades to users.
		if _, err := t.exec(ctx, `DELETE FROM principals WHERE id = $1`, userID); err != nil {
			return nil, fmt.Errorf("deleting user %s: %w", userID, err)
		}
		t.audit("user_deleted.v0", accountID, userID, map[string]any{"reason": "left_last_account"})
	}
	return deleted, nil
}

// keepsAnAdmin returns a codes.LastAdmin conflict unless the account has an
// active administrator other than userID (the user and their membership
// active). It is race-free because every
// unit of work first takes the store revision row (update), so no other
// writer can change memberships between this count and the caller's change.
func (t *tx) keepsAnAdmin(ctx context.Context, accountID, userID string) error {
	var n int
	err := t.queryRow(ctx, `SELECT COUNT(*) FROM memberships m JOIN principals p ON p.id = m.user_id
		WHERE m.account_id = $1 AND m.admin AND p.active AND m.active AND m.user_id <> $2`, accountID, userID).Scan(&n)
	if err != nil {
		return fmt.Errorf("counting administrators of %s: %w", accountID, err)
	}
	if n == 0 {
		return conflict(codes.LastAdmin,
			"An account always keeps at least one active administrator: make another member an administrator first.")
	}
	return nil
}

// ListAccountsOf returns one page of the accounts user userID belongs to
// and may act in (a membership deactivated there, SCIM active false, is left out),
// with the user's roles in each, newest account first, and whether more
// remain.
func (s *Store) ListAccountsOf(ctx context.Context, userID string, page Page) ([]AccountMembership, bool, error) {
	return listPage(ctx, s.rdb, `SELECT a.id, a.name, a.active, a.created_at,
			m.developer, m.team, m.billing, m.admin, m.created_at
		FROM memberships m JOIN accounts a ON a.id = m.account_id WHERE m.user_id = $1 AND m.active`,
		"a.id", []any{userID}, page, func(r scanner) (AccountMembership, error) {
			var (
				am              AccountMembership
				dev, team       string
				created, joined int64
			)
			err := r.Scan(&am.Account.ID, &am.Account.Name, &am.Account.Active, &created,
				&dev, &team, &am.Roles.Billing, &am.Roles.Admin, &joined)
			am.Roles.AccountID, am.Roles.UserID = am.Account.ID, userID
			am.Roles.Developer, am.Roles.Team = DeveloperRole(dev), TeamRole(team)
			am.Account.CreatedAt, am.Roles.CreatedAt = fromMicros(created), fromMicros(joined)
			return am, err
		})
}

// RenameAccount changes an account's name (account_updated.v0). Renaming
// to the current name writes nothing.
func (s *Store) RenameAccount(ctx context.Context, actor Actor, id, name string) (*Account, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var a *Account
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if a, err = getAccount(ctx, t.sql, id); err != nil {
			return err
		}
		if a.Name == name {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE accounts SET name = $1 WHERE id = $2`, name, id); err != nil {
			return fmt.Errorf("updating account %s: %w", id, err)
		}
		a.Name = name
		t.audit("account_updated.v0", id, id, map[string]any{"name": name})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// APIKeyCreator returns who created API key keyID of the account, as the
// audit log recorded it in the key's own unit of work: a usr_ or bot_ ID,
// or "system". It returns ErrNotFound when the log has no creation event
// for the key.
func (s *Store) APIKeyCreator(ctx context.Context, accountID, keyID string) (string, error) {
	var actor string
	err := s.rdb.QueryRowContext(ctx, `SELECT actor_id FROM audit_events
		WHERE account_id = $1 AND object_id = $2 AND type = 'api_key_created.v0'`, accountID, keyID).Scan(&actor)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("creation of API key %s: %w", keyID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("reading creation of API key %s: %w", keyID, err)
	}
	return actor, nil
}

// userByEmail returns the ID and active state of the user with a
// normalised e-mail address, or ErrNotFound.
func userByEmail(ctx context.Context, q queryer, email string) (id string, active bool, err error) {
	err = q.QueryRowContext(ctx, `SELECT p.id, p.active FROM users u JOIN principals p ON p.id = u.id WHERE u.email = $1`, email).
		Scan(&id, &active)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, fmt.Errorf("user %s: %w", email, ErrNotFound)
	}
	if err != nil {
		return "", false, fmt.Errorf("reading user %s: %w", email, err)
	}
	return id, active, nil
}

// insertUser creates an active user with a given ID (createUser picks one),
// or returns ErrConflict when the e-mail address is taken; its audit event
// goes to accountID's log ("" for none).
func (t *tx) insertUser(ctx context.Context, accountID, id, email, name string) (*User, error) {
	u := &User{ID: id, Email: email, Name: name, Active: true, CreatedAt: fromMicros(t.stamp())}
	if _, err := t.exec(ctx, `INSERT INTO principals (id, kind, name, active, created_at) VALUES ($1, 'user', $2, $3, $4)`,
		u.ID, u.Name, u.Active, t.stamp()); err != nil {
		return nil, fmt.Errorf("creating user: %w", err)
	}
	if _, err := t.exec(ctx, `INSERT INTO users (id, email) VALUES ($1, $2)`, u.ID, u.Email); err != nil {
		if isUniqueViolation(err) {
			return nil, fmt.Errorf("user %s: %w", email, ErrConflict)
		}
		return nil, fmt.Errorf("creating user: %w", err)
	}
	t.audit("user_created.v0", accountID, u.ID, map[string]any{"email": u.Email, "name": u.Name})
	return u, nil
}
