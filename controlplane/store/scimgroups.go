package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
)

// SCIM groups and the roles they grant (docs/scim.md#groups-and-roles).
//
// The rule: a member of the account who is in at least one group has the
// roles of SCIMDefaultRoles joined with those of every group they are in,
// each dimension taking the highest grant (developer rw over ro; team
// manager over invite over ro; billing and administrator if any group
// grants them). A member who leaves their last group gets SCIMDefaultRoles.
// Roles are recomputed, in the same unit of work, for exactly the members
// whose groups or whose groups' grants change; members never in a group
// keep the roles the API or dashboard gave them. A recomputation that
// would leave the account without an active administrator is refused
// (codes.LastAdmin) and nothing changes.

// SCIMGroupRoles are the roles a group grants; an empty Developer or Team
// grants nothing of that dimension.
type SCIMGroupRoles struct {
	Developer DeveloperRole // "", rw or ro
	Team      TeamRole      // "", manager, invite or ro
	Billing   bool
	Admin     bool
}

// SCIMGroup is a SCIM group of an account.
type SCIMGroup struct {
	ID          string // grp_...
	AccountID   string
	DisplayName string
	ExternalID  string
	Roles       SCIMGroupRoles
	// Members are user IDs, members of the account, sorted.
	Members   []string
	CreatedAt time.Time
}

// SCIMGroupFilter selects groups of a list: empty fields select all.
type SCIMGroupFilter struct {
	DisplayName string
	ExternalID  string
	ID          string
}

// validate checks the group's name and roles.
func (g *SCIMGroup) validate() error {
	if g.DisplayName == "" || len(g.DisplayName) > 255 {
		return codes.NewError(codes.SCIMInvalidValue, "A group's displayName must be 1 to 255 bytes.")
	}
	switch g.Roles.Developer {
	case "", DeveloperRW, DeveloperRO:
	default:
		return codes.NewError(codes.SCIMGroupRoles, "The developer role %q is not valid: use rw, ro or leave it empty.", truncate(string(g.Roles.Developer), 40))
	}
	switch g.Roles.Team {
	case "", TeamManager, TeamInvite, TeamRO:
	default:
		return codes.NewError(codes.SCIMGroupRoles, "The team role %q is not valid: use manager, invite, ro or leave it empty.", truncate(string(g.Roles.Team), 40))
	}
	return nil
}

const scimGroupColumns = `SELECT id, account_id, display_name, external_id, developer, team, billing, admin, created_at FROM scim_groups`

func scanSCIMGroup(r scanner) (SCIMGroup, error) {
	var (
		g         SCIMGroup
		dev, team string
		created   int64
	)
	err := r.Scan(&g.ID, &g.AccountID, &g.DisplayName, &g.ExternalID, &dev, &team, &g.Roles.Billing, &g.Roles.Admin, &created)
	g.Roles.Developer, g.Roles.Team, g.CreatedAt = DeveloperRole(dev), TeamRole(team), fromMicros(created)
	return g, err
}

// scimGroup reads one group of the account with its members, or
// ErrNotFound.
func scimGroup(ctx context.Context, q rowsQueryer, accountID, id string) (*SCIMGroup, error) {
	g, err := scanSCIMGroup(q.QueryRowContext(ctx, scimGroupColumns+` WHERE account_id = $1 AND id = $2`, accountID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("group %s in account %s: %w", id, accountID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading group %s: %w", id, err)
	}
	if g.Members, err = queryStrings(ctx, q, `SELECT user_id FROM scim_group_members WHERE group_id = $1 ORDER BY user_id`, id); err != nil {
		return nil, fmt.Errorf("reading members of %s: %w", id, err)
	}
	return &g, nil
}

// SCIMGetGroup returns a group of the account, or ErrNotFound.
func (s *Store) SCIMGetGroup(ctx context.Context, accountID, id string) (*SCIMGroup, error) {
	return scimGroup(ctx, s.rdb, accountID, id)
}

// SCIMListGroups returns one page of the account's groups that match f,
// oldest first, each with its members, and how many match in all.
func (s *Store) SCIMListGroups(ctx context.Context, accountID string, f SCIMGroupFilter, page SCIMPage) ([]SCIMGroup, int, error) {
	where, args := ` WHERE account_id = $1`, []any{accountID}
	for col, v := range map[string]string{"display_name": f.DisplayName, "external_id": f.ExternalID, "id": f.ID} {
		if v != "" {
			args = append(args, v)
			where += " AND " + col + " = $" + strconv.Itoa(len(args))
		}
	}
	gs, total, err := scimList(ctx, s.rdb, `SELECT COUNT(*) FROM scim_groups`+where, scimGroupColumns+where+` ORDER BY id`, args, page, scanSCIMGroup)
	if err != nil {
		return nil, 0, err
	}
	for i := range gs {
		if gs[i].Members, err = queryStrings(ctx, s.rdb, `SELECT user_id FROM scim_group_members WHERE group_id = $1 ORDER BY user_id`, gs[i].ID); err != nil {
			return nil, 0, fmt.Errorf("reading members of %s: %w", gs[i].ID, err)
		}
	}
	return gs, total, nil
}

// SCIMCreateGroup creates group g in the account with its members and
// recomputes their roles (scim_group_created.v0, membership_updated.v0 for
// each member whose roles change). Errors: codes.SCIMInvalidValue,
// codes.SCIMGroupRoles, codes.SCIMMemberUnknown (a member not in the
// account), codes.SCIMUniqueness (the name is taken), codes.LastAdmin.
func (s *Store) SCIMCreateGroup(ctx context.Context, actor Actor, accountID string, g SCIMGroup) (*SCIMGroup, error) {
	g.ID, g.AccountID = ids.New(ids.PrefixSCIMGroup), accountID
	if err := g.validate(); err != nil {
		return nil, err
	}
	var out *SCIMGroup
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM accounts WHERE id = $1`, accountID, "account"); err != nil {
			return err
		}
		if _, err := t.exec(ctx, `INSERT INTO scim_groups (id, account_id, display_name, external_id, developer, team, billing, admin, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, g.ID, accountID, g.DisplayName, g.ExternalID,
			string(g.Roles.Developer), string(g.Roles.Team), g.Roles.Billing, g.Roles.Admin, t.stamp()); err != nil {
			if isUniqueViolation(err) {
				return conflict(codes.SCIMUniqueness, "The account has a group named %q already.", g.DisplayName)
			}
			return fmt.Errorf("creating group: %w", err)
		}
		t.audit("scim_group_created.v0", accountID, g.ID, groupPayload(&g))
		if err := t.setGroupMembers(ctx, &g, nil, g.Members); err != nil {
			return err
		}
		var err error
		out, err = scimGroup(ctx, t.sql, accountID, g.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SCIMUpdateGroup changes a group in one unit of work: change gets the
// group as it is and returns what it should be (RFC 7644 PUT and PATCH
// are applied by the caller in change); the name, external ID, roles and
// members that differ are written and the roles of every member who
// joined, left, or whose group's grants changed are recomputed
// (scim_group_updated.v0, membership_updated.v0). Errors as
// SCIMCreateGroup, and ErrNotFound.
func (s *Store) SCIMUpdateGroup(ctx context.Context, actor Actor, accountID, id string,
	change func(cur SCIMGroup) (SCIMGroup, error)) (*SCIMGroup, error) {
	var out *SCIMGroup
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		cur, err := scimGroup(ctx, t.sql, accountID, id)
		if err != nil {
			return err
		}
		in := *cur
		in.Members = slices.Clone(cur.Members) // change may edit it in place
		next, err := change(in)
		if err != nil {
			return err
		}
		next.ID, next.AccountID, next.CreatedAt = cur.ID, cur.AccountID, cur.CreatedAt
		if err := next.validate(); err != nil {
			return err
		}
		if next.DisplayName != cur.DisplayName || next.ExternalID != cur.ExternalID || next.Roles != cur.Roles {
			if _, err := t.exec(ctx, `UPDATE scim_groups SET display_name = $1, external_id = $2, developer = $3, team = $4,
				billing = $5, admin = $6 WHERE id = $7`, next.DisplayName, next.ExternalID, string(next.Roles.Developer),
				string(next.Roles.Team), next.Roles.Billing, next.Roles.Admin, id); err != nil {
				if isUniqueViolation(err) {
					return conflict(codes.SCIMUniqueness, "The account has a group named %q already.", next.DisplayName)
				}
				return fmt.Errorf("updating group %s: %w", id, err)
			}
			t.audit("scim_group_updated.v0", accountID, id, groupPayload(&next))
		}
		recompute := cur.Members
		if next.Roles == cur.Roles {
			recompute = nil // only those who join or leave
		}
		if err := t.setGroupMembers(ctx, &next, cur.Members, next.Members, recompute...); err != nil {
			return err
		}
		out, err = scimGroup(ctx, t.sql, accountID, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SCIMDeleteGroup deletes a group and recomputes its members' roles
// (scim_group_deleted.v0). Errors: ErrNotFound, codes.LastAdmin.
func (s *Store) SCIMDeleteGroup(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		g, err := scimGroup(ctx, t.sql, accountID, id)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `DELETE FROM scim_groups WHERE id = $1`, id); err != nil {
			return fmt.Errorf("deleting group %s: %w", id, err)
		}
		t.audit("scim_group_deleted.v0", accountID, id, map[string]any{"display_name": g.DisplayName, "members": g.Members})
		for _, u := range g.Members {
			if err := t.recomputeRoles(ctx, accountID, u); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

func groupPayload(g *SCIMGroup) map[string]any {
	return map[string]any{"display_name": g.DisplayName, "external_id": g.ExternalID,
		"roles": map[string]any{"developer": g.Roles.Developer, "team": g.Roles.Team, "billing": g.Roles.Billing, "admin": g.Roles.Admin}}
}

// setGroupMembers makes the members of group g next (they were cur),
// records the change, and recomputes the roles of those who joined or
// left and of also.
func (t *tx) setGroupMembers(ctx context.Context, g *SCIMGroup, cur, next []string, also ...string) error {
	next = slices.Compact(slices.Sorted(slices.Values(next)))
	var added, removed []string
	for _, u := range next {
		if !slices.Contains(cur, u) {
			added = append(added, u)
		}
	}
	for _, u := range cur {
		if !slices.Contains(next, u) {
			removed = append(removed, u)
		}
	}
	for _, u := range added {
		var one int
		err := t.queryRow(ctx, `SELECT 1 FROM memberships WHERE account_id = $1 AND user_id = $2`, g.AccountID, u).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return codes.NewError(codes.SCIMMemberUnknown, "The group member %q is not a user of this account: provision the user first.", truncate(u, 100))
		}
		if err != nil {
			return fmt.Errorf("reading membership of %s: %w", u, err)
		}
		if _, err := t.exec(ctx, `INSERT INTO scim_group_members (group_id, account_id, user_id) VALUES ($1, $2, $3)`, g.ID, g.AccountID, u); err != nil {
			return fmt.Errorf("adding %s to group %s: %w", u, g.ID, err)
		}
	}
	for _, u := range removed {
		if _, err := t.exec(ctx, `DELETE FROM scim_group_members WHERE group_id = $1 AND user_id = $2`, g.ID, u); err != nil {
			return fmt.Errorf("removing %s from group %s: %w", u, g.ID, err)
		}
	}
	if len(added)+len(removed) > 0 {
		t.audit("scim_group_members_changed.v0", g.AccountID, g.ID, map[string]any{"added": added, "removed": removed})
	}
	affected := append(append(append([]string{}, added...), removed...), also...)
	for _, u := range slices.Compact(slices.Sorted(slices.Values(affected))) {
		if err := t.recomputeRoles(ctx, g.AccountID, u); err != nil {
			return err
		}
	}
	return nil
}

// recomputeRoles sets the roles of member userID from their groups (the
// rule at the top of this file).
func (t *tx) recomputeRoles(ctx context.Context, accountID, userID string) error {
	m, err := scanMember(t.queryRow(ctx, memberColumns+` WHERE m.account_id = $1 AND m.user_id = $2`, accountID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil // removed from the account in this unit of work
	}
	if err != nil {
		return fmt.Errorf("reading member %s: %w", userID, err)
	}
	rows, err := t.query(ctx, `SELECT g.developer, g.team, g.billing, g.admin FROM scim_groups g
		JOIN scim_group_members gm ON gm.group_id = g.id WHERE gm.account_id = $1 AND gm.user_id = $2`, accountID, userID)
	if err != nil {
		return fmt.Errorf("reading groups of %s: %w", userID, err)
	}
	next := SCIMDefaultRoles
	next.AccountID, next.UserID, next.CreatedAt = accountID, userID, m.Roles.CreatedAt
	for rows.Next() {
		var g SCIMGroupRoles
		var dev, team string
		if err := rows.Scan(&dev, &team, &g.Billing, &g.Admin); err != nil {
			rows.Close()
			return fmt.Errorf("reading groups of %s: %w", userID, err)
		}
		g.Developer, g.Team = DeveloperRole(dev), TeamRole(team)
		next = joinRoles(next, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading groups of %s: %w", userID, err)
	}
	if next == m.Roles {
		return nil
	}
	if m.Roles.Admin && !next.Admin {
		if err := t.keepsAnAdmin(ctx, accountID, userID); err != nil {
			return err
		}
	}
	return t.putMembership(ctx, next)
}

// developerRank and teamRank order each role dimension, least first.
var (
	developerRank = map[DeveloperRole]int{DeveloperRO: 1, DeveloperRW: 2}
	teamRank      = map[TeamRole]int{TeamRO: 1, TeamInvite: 2, TeamManager: 3}
)

// joinRoles returns m raised by the grants of g, dimension by dimension.
func joinRoles(m Membership, g SCIMGroupRoles) Membership {
	if developerRank[g.Developer] > developerRank[m.Developer] {
		m.Developer = g.Developer
	}
	if teamRank[g.Team] > teamRank[m.Team] {
		m.Team = g.Team
	}
	m.Billing = m.Billing || g.Billing
	m.Admin = m.Admin || g.Admin
	return m
}
