package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/tollgate/tollgate/codes"
)

// SCIM provisioning (RFC 7643/7644, docs/scim.md): an account's identity
// provider creates, changes, deactivates and removes the account's users
// and groups. A SCIM User is a membership of the account seen with its
// user; a SCIM Group is a scim_groups row whose members get its roles.
//
// Users are not owned by accounts: creating a SCIM User reuses the user
// with that e-mail address when there is one, and deactivating or deleting
// it acts on the membership of this account only (a user left in no
// account is deleted, as RemoveMember does).

// SCIMDefaultRoles are the roles of a member created through SCIM, and
// those of a member who leaves their last group: read-only developer and
// team, no billing, not an administrator. Groups grant more
// (SCIMGroupRoles).
var SCIMDefaultRoles = Membership{Developer: DeveloperRO, Team: TeamRO}

// SCIMUser is a member of an account as SCIM shows it.
type SCIMUser struct {
	Member
	// Active is the membership's state in this account (SCIM active):
	// false means the user may not sign in to the account and their
	// credentials there do not work. The user's own (global) state is
	// Member.User.Active.
	Active bool
	// ExternalID is the identity provider's ID of the user, per account.
	ExternalID string
	// Groups are the IDs of the account's groups the user is in.
	Groups []string
}

// SCIMUserInput is what a SCIM client sets on a user: create takes every
// field; SCIMUpdateUser's function changes them.
type SCIMUserInput struct {
	Email       string // userName; an e-mail address
	DisplayName string
	Active      bool
	ExternalID  string
}

// SCIMUserFilter selects users of a list: empty fields select all.
type SCIMUserFilter struct {
	Email      string // userName eq
	ExternalID string // externalId eq
	ID         string // id eq
}

// SCIMPage is a SCIM list page (RFC 7644 §3.4.2.4): StartIndex is
// 1-based; Count is the page size, 0–MaxPageSize.
type SCIMPage struct {
	StartIndex int
	Count      int
}

func (p SCIMPage) bounds() (offset, limit int) {
	offset = max(p.StartIndex, 1) - 1
	limit = min(max(p.Count, 0), MaxPageSize)
	return offset, limit
}

const scimUserColumns = memberFields + `, m.active, m.scim_external_id` + memberFrom

func scanSCIMUser(r scanner) (SCIMUser, error) {
	var su SCIMUser
	var err error
	su.Member, err = scanMemberWith(r, &su.Active, &su.ExternalID)
	return su, err
}

// Input returns the fields a SCIM client sets, as they are now.
func (u *SCIMUser) Input() SCIMUserInput {
	return SCIMUserInput{Email: u.User.Email, DisplayName: u.User.Name, Active: u.Active, ExternalID: u.ExternalID}
}

// scimUser reads one SCIM user of the account with their groups, or
// ErrNotFound.
func scimUser(ctx context.Context, q rowsQueryer, accountID, userID string) (*SCIMUser, error) {
	su, err := scanSCIMUser(q.QueryRowContext(ctx, scimUserColumns+` WHERE m.account_id = $1 AND m.user_id = $2`, accountID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %s in account %s: %w", userID, accountID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading user %s: %w", userID, err)
	}
	if su.Groups, err = queryStrings(ctx, q, `SELECT group_id FROM scim_group_members
		WHERE account_id = $1 AND user_id = $2 ORDER BY group_id`, accountID, userID); err != nil {
		return nil, fmt.Errorf("reading groups of %s: %w", userID, err)
	}
	return &su, nil
}

// SCIMGetUser returns the account's member userID, or ErrNotFound.
func (s *Store) SCIMGetUser(ctx context.Context, accountID, userID string) (*SCIMUser, error) {
	return scimUser(ctx, s.rdb, accountID, userID)
}

// SCIMListUsers returns one page of the account's members that match f,
// oldest first (by ID), and how many match in all. Users come without
// their groups (SCIMGetUser has them).
func (s *Store) SCIMListUsers(ctx context.Context, accountID string, f SCIMUserFilter, page SCIMPage) ([]SCIMUser, int, error) {
	where, args := ` WHERE m.account_id = $1`, []any{accountID}
	add := func(col, v string) {
		if v != "" {
			args = append(args, v)
			where += " AND " + col + " = $" + strconv.Itoa(len(args))
		}
	}
	if f.Email != "" {
		e, err := normalizeEmail(f.Email)
		if err != nil {
			return []SCIMUser{}, 0, nil // no user has that address
		}
		add("u.email", e)
	}
	add("m.scim_external_id", f.ExternalID)
	add("m.user_id", f.ID)
	return scimList(ctx, s.rdb, `SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id`+where,
		scimUserColumns+where+` ORDER BY m.user_id`, args, page, scanSCIMUser)
}

// scimList counts the rows of countQ and reads one page of listQ (both
// with args).
func scimList[T any](ctx context.Context, db *sql.DB, countQ, listQ string, args []any, page SCIMPage,
	scan func(scanner) (T, error)) ([]T, int, error) {
	var total int
	if err := db.QueryRowContext(ctx, countQ, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("counting: %w", err)
	}
	offset, limit := page.bounds()
	out := []T{}
	if limit == 0 || offset >= total {
		return out, total, nil
	}
	n := len(args)
	rows, err := db.QueryContext(ctx, listQ+" LIMIT $"+strconv.Itoa(n+1)+" OFFSET $"+strconv.Itoa(n+2),
		append(append([]any{}, args...), limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("listing: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("listing: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("listing: %w", err)
	}
	return out, total, nil
}

// SCIMCreateUser makes the user with in.Email (a new one, or the existing
// user with that address) a member of the account with SCIMDefaultRoles,
// in.Active and in.ExternalID, in one unit of work (membership_created.v0,
// and user_created.v0 for a new user). An existing user keeps their name.
// Errors: a *codes.Error (codes.SCIMUserName) for an address that is not
// valid; a *ConflictError with codes.SCIMUniqueness when the user is a
// member already.
func (s *Store) SCIMCreateUser(ctx context.Context, actor Actor, accountID string, in SCIMUserInput) (*SCIMUser, error) {
	email, err := normalizeEmail(in.Email)
	if err != nil {
		return nil, codes.NewError(codes.SCIMUserName, "userName %q is not an e-mail address: map the user's e-mail address (mail or userPrincipalName) to userName.", truncate(in.Email, 100))
	}
	name := truncate(in.DisplayName, 255)
	var su *SCIMUser
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM accounts WHERE id = $1`, accountID, "account"); err != nil {
			return err
		}
		userID, _, err := userByEmail(ctx, t.sql, email)
		if errors.Is(err, ErrNotFound) {
			var u *User
			if u, err = t.createUser(ctx, email, name); err != nil {
				return err
			}
			userID = u.ID
		} else if err != nil {
			return err
		} else if _, err := scimUser(ctx, t.sql, accountID, userID); err == nil {
			return conflict(codes.SCIMUniqueness, "The user %s is already a member of this account: find them with filter=userName eq %q.", email, email)
		}
		m := SCIMDefaultRoles
		m.AccountID, m.UserID = accountID, userID
		if _, err := t.exec(ctx, `INSERT INTO memberships (account_id, user_id, developer, team, billing, admin, created_at, active, scim_external_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, accountID, userID, string(m.Developer), string(m.Team),
			m.Billing, m.Admin, t.stamp(), in.Active, in.ExternalID); err != nil {
			return fmt.Errorf("creating membership: %w", err)
		}
		t.audit("membership_created.v0", accountID, userID, map[string]any{"source": "scim",
			"developer": m.Developer, "team": m.Team, "billing": m.Billing, "admin": m.Admin,
			"active": in.Active, "external_id": in.ExternalID})
		su, err = scimUser(ctx, t.sql, accountID, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return su, nil
}

// SCIMUpdateUser changes the account's member userID in one unit of work:
// change gets the member as they are and returns what they should be
// (RFC 7644 PUT and PATCH are applied by the caller in change); what
// differs is written. Deactivating (Active false) keeps the membership and
// credentials but stops them (codes.LastAdmin when the member is the
// account's last active administrator). The user's e-mail address is
// their identity everywhere: it changes only for a user who belongs to no
// other account (a *ConflictError with codes.SCIMMutability otherwise);
// their name is a profile field that any of their accounts' identity
// providers may set (the last one wins). Audit events:
// membership_updated.v0, user_updated.v0. It returns the member after the
// call.
func (s *Store) SCIMUpdateUser(ctx context.Context, actor Actor, accountID, userID string,
	change func(cur SCIMUserInput) (SCIMUserInput, error)) (*SCIMUser, error) {
	var su *SCIMUser
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		cur, err := scimUser(ctx, t.sql, accountID, userID)
		if err != nil {
			return err
		}
		next, err := change(cur.Input())
		if err != nil {
			return err
		}
		if err := t.scimApplyUser(ctx, cur, next); err != nil {
			return err
		}
		su, err = scimUser(ctx, t.sql, accountID, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return su, nil
}

// scimApplyUser writes what differs between cur and next.
func (t *tx) scimApplyUser(ctx context.Context, cur *SCIMUser, next SCIMUserInput) error {
	accountID, userID := cur.Roles.AccountID, cur.User.ID
	email, err := normalizeEmail(next.Email)
	if err != nil {
		return codes.NewError(codes.SCIMUserName, "userName %q is not an e-mail address: map the user's e-mail address to userName.", truncate(next.Email, 100))
	}
	var others int
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM memberships WHERE user_id = $1 AND account_id <> $2`, userID, accountID).Scan(&others); err != nil {
		return fmt.Errorf("counting memberships of %s: %w", userID, err)
	}
	user := map[string]any{}
	if email != cur.User.Email {
		if others > 0 {
			return conflict(codes.SCIMMutability, "The user %s belongs to other accounts too, so this account cannot change their e-mail address to %s. Provision the new address as a new user.", cur.User.Email, email)
		}
		if id, _, err := userByEmail(ctx, t.sql, email); err == nil && id != userID {
			return conflict(codes.SCIMUniqueness, "Another user already has the address %s.", email)
		}
		if _, err := t.exec(ctx, `UPDATE users SET email = $1 WHERE id = $2`, email, userID); err != nil {
			return fmt.Errorf("updating user %s: %w", userID, err)
		}
		user["email"] = email
	}
	if name := truncate(next.DisplayName, 255); name != cur.User.Name {
		if _, err := t.exec(ctx, `UPDATE principals SET name = $1 WHERE id = $2`, name, userID); err != nil {
			return fmt.Errorf("updating user %s: %w", userID, err)
		}
		user["name"] = name
	}
	if len(user) > 0 {
		user["source"] = "scim"
		t.audit("user_updated.v0", accountID, userID, user)
	}
	memb := map[string]any{}
	if next.Active != cur.Active {
		if !next.Active && cur.Roles.Admin {
			if err := t.keepsAnAdmin(ctx, accountID, userID); err != nil {
				return err
			}
		}
		memb["active"] = next.Active
	}
	if next.ExternalID != cur.ExternalID {
		memb["external_id"] = next.ExternalID
	}
	if len(memb) == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `UPDATE memberships SET active = $1, scim_external_id = $2 WHERE account_id = $3 AND user_id = $4`,
		next.Active, next.ExternalID, accountID, userID); err != nil {
		return fmt.Errorf("updating membership of %s: %w", userID, err)
	}
	memb["source"] = "scim"
	t.audit("membership_updated.v0", accountID, userID, memb)
	return nil
}

// SCIMDeleteUser removes the member from the account: RemoveMember
// without a role check (their credentials in the account are deleted, the
// user too when they belong to no other account; codes.LastAdmin for the
// last administrator). It returns the IDs of the credentials deleted.
func (s *Store) SCIMDeleteUser(ctx context.Context, actor Actor, accountID, userID string) ([]string, error) {
	return s.RemoveMember(ctx, actor, accountID, userID, nil)
}

// MembershipActive reports whether user userID may act in account
// accountID: the account, the user and their membership there are all
// active. It returns ErrNotFound when the user is not a member. Sign-in
// paths that do not go through an API key (passwords, SSO) check it.
func (s *Store) MembershipActive(ctx context.Context, accountID, userID string) (bool, error) {
	var ok bool
	err := s.rdb.QueryRowContext(ctx, `SELECT a.active AND p.active AND m.active FROM memberships m
		JOIN accounts a ON a.id = m.account_id JOIN principals p ON p.id = m.user_id
		WHERE m.account_id = $1 AND m.user_id = $2`, accountID, userID).Scan(&ok)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("membership of %s in %s: %w", userID, accountID, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("reading membership of %s: %w", userID, err)
	}
	return ok, nil
}

// rowsQueryer reads rows: a *sql.DB or a *sql.Tx.
type rowsQueryer interface {
	queryer
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryStrings runs query and returns its single text column.
func queryStrings(ctx context.Context, q rowsQueryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
