package controlplane

import (
	"context"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/snapshot"
)

// Users, bot users and roles (RBAC).
//
// A user (usr_) may belong to several accounts, with roles per account
// (docs/api-compatibility.md#roles): developer rw|ro, team
// manager|invite|ro, a billing flag and an administrator flag. A bot user
// (bot_) belongs to exactly one account, is not a member (it takes no seat),
// acts as a read/write developer with no other role, and has no login. An
// API key belongs to one account and acts there with its owner's roles;
// switching accounts means using a key of the other account.
//
// Who may do what, through the REST API and the dashboard alike (the
// methods of Caller and the access checks below hold the rules; the RBAC
// matrix test, restapi/rbac_test.go, pins them for every role and route):
//   - Read: every member reads every resource of the account, except the
//     audit log (administrators and team managers, RequireAuditReader). Bot
//     users read everything except /users and /invitations (team data) and
//     the audit log. The billing flag gates nothing yet: a billing-only
//     member reads like any read-only member.
//   - Write resources (credentials, API keys, SSH keys, reservations, IP
//     policies, rules and restrictions): developer rw, administrators and
//     bot users. A credential owned by someone else: administrators only.
//   - Bot users, and other users' roles and membership: team managers and
//     administrators. Only administrators grant, revoke or touch the
//     administrator flag or an administrator. Any user may leave an account
//     (DELETE /users/{own id}).
//   - Invitations: administrators and team managers invite with any role
//     but administrator (administrators: any); team invite-only members
//     invite with at most the roles they hold (never team manager or
//     administrator) and revoke their own invitations.
//   - Account settings (PATCH /accounts/{id}): administrators.
//   - An account always keeps an active administrator: a change that would
//     leave none is refused with TG_2619 (409), decided inside the unit of
//     work, which every writer serialises on the revision row.
//   - Removing a user from an account deletes, in the same unit of work,
//     every credential they own there (one audit event each); they never
//     come back, even if the user joins again. A user left in no account is
//     deleted.

// Caller is the authenticated principal of a request: the API key it
// presented (the dashboard: signed in with) and whom the audit log names.
// Its methods are the RBAC rules; a Require or Check method returns nil or
// a 403 *Error that says what the caller lacks.
type Caller struct {
	// Key is the API key, with its owner's current roles in its account.
	Key *store.APIKeyAuth
	// Actor attributes the caller's changes in the audit log.
	Actor store.Actor
}

// NewCaller returns the Caller of an API key the request authenticated
// with: acting as its owner, in its account, with that key.
func NewCaller(key *store.APIKeyAuth) *Caller {
	return &Caller{Key: key, Actor: store.Actor{AccountID: key.AccountID, PrincipalID: key.OwnerID, CredentialID: key.KeyID}}
}

// AccountID is the account the request acts in: the API key's.
func (c *Caller) AccountID() string { return c.Key.AccountID }

// IsAdmin reports whether the caller has the administrator flag.
func (c *Caller) IsAdmin() bool { return c.Key.Roles.Admin }

// CanWrite reports whether the caller may create, change and delete
// resources: administrators and read/write developers (bot users are
// read/write developers).
func (c *Caller) CanWrite() bool {
	return c.Key.Roles.Admin || c.Key.Roles.Developer == store.DeveloperRW
}

// RequireWrite refuses callers who may only read.
func (c *Caller) RequireWrite() error {
	if !c.CanWrite() {
		return Forbidden("Your role in this account is read-only: ask an administrator for the read/write developer role.")
	}
	return nil
}

// RequireOwnerOrAdmin refuses a non-administrator acting on a credential
// owned by another principal.
func (c *Caller) RequireOwnerOrAdmin(ownerID string) error {
	if err := c.RequireWrite(); err != nil {
		return err
	}
	if ownerID != c.Key.OwnerID && !c.IsAdmin() {
		return Forbidden("Only administrators may manage credentials owned by another user or bot user.")
	}
	return nil
}

// RequireTeamManager refuses callers who may not manage principals: only
// administrators and users with the team manager role manage bot users and
// change or remove users.
func (c *Caller) RequireTeamManager() error {
	if c.IsTeamManager() {
		return nil
	}
	return Forbidden("Managing users and bot users needs the administrator flag or the team manager role.")
}

// IsBot reports whether the caller is a bot user.
func (c *Caller) IsBot() bool { return c.Key.OwnerKind == snapshot.PrincipalBot }

// IsTeamManager reports whether the caller is an administrator or a user
// with the team manager role.
func (c *Caller) IsTeamManager() bool {
	return c.Key.Roles.Admin || (!c.IsBot() && c.Key.Roles.Team == store.TeamManager)
}

// RequireAdmin refuses callers without the administrator flag.
func (c *Caller) RequireAdmin(what string) error {
	if c.IsAdmin() {
		return nil
	}
	return Forbidden("Only administrators may %s.", what)
}

// RequireUser refuses bot users. Bot users act as read/write developers
// and hold no team, billing or administrator role
// (docs/api-compatibility.md#bot-users): they do not see the account's
// users and invitations, and cannot switch accounts or log in.
func (c *Caller) RequireUser(what string) error {
	if c.IsBot() {
		return Forbidden("Bot users may not %s: they act as read/write developers only. Use a user's API key.", what)
	}
	return nil
}

// CheckRoleChange decides whether the caller may change a member's roles
// from cur to next (the REST API runs it inside the store's unit of work): administrators
// change anyone's; team managers change those of members who are not
// administrators, and never grant or revoke the administrator flag.
func (c *Caller) CheckRoleChange(cur, next store.Membership) error {
	if c.IsAdmin() {
		return nil
	}
	if !c.IsTeamManager() {
		return Forbidden("Changing a user's roles needs the administrator flag or the team manager role.")
	}
	if cur.Admin {
		return Forbidden("Only administrators may change an administrator's roles.")
	}
	if next.Admin {
		return Forbidden("Only administrators may grant the administrator flag.")
	}
	return nil
}

// CheckRemoveMember decides whether the caller may remove member userID,
// whose roles are cur, from the account: any user may leave (remove
// themselves); administrators remove anyone; team managers remove members
// who are not administrators. The store keeps the last administrator.
func (c *Caller) CheckRemoveMember(userID string, cur store.Membership) error {
	if !c.IsBot() && userID == c.Key.OwnerID {
		return nil
	}
	if c.IsAdmin() {
		return nil
	}
	if !c.IsTeamManager() {
		return Forbidden("Removing a user needs the administrator flag or the team manager role.")
	}
	if cur.Admin {
		return Forbidden("Only administrators may remove an administrator.")
	}
	return nil
}

// CheckInvite decides whether the caller may invite someone with the roles
// of in. Administrators grant any roles; team managers any roles but the
// administrator flag; team invite-only members grant at most what they
// hold themselves (developer rw only if they have it, team invite or ro,
// billing only if they have it, never administrator), so inviting is never
// a way to raise one's own access.
func (c *Caller) CheckInvite(in store.InvitationCreate) error {
	if c.IsAdmin() {
		return nil
	}
	if c.IsBot() {
		return Forbidden("Bot users may not invite users.")
	}
	if in.Admin {
		return Forbidden("Only administrators may invite an administrator.")
	}
	switch c.Key.Roles.Team {
	case store.TeamManager:
		return nil
	case store.TeamInvite:
		if in.Team == store.TeamManager {
			return Forbidden("Team invite-only members may not invite a team manager; ask a team manager.")
		}
		if in.Developer == store.DeveloperRW && c.Key.Roles.Developer != store.DeveloperRW {
			return Forbidden("You may not grant the read/write developer role, which you do not hold.")
		}
		if in.Billing && !c.Key.Roles.Billing {
			return Forbidden("You may not grant billing access, which you do not hold.")
		}
		return nil
	}
	return Forbidden("Inviting users needs the administrator flag or the team manager or invite-only role.")
}

// CheckRevokeInvitation decides whether the caller may delete an
// invitation: administrators and team managers any; team invite-only
// members those they created.
func (c *Caller) CheckRevokeInvitation(inv *store.Invitation) error {
	if c.IsTeamManager() {
		return nil
	}
	if !c.IsBot() && c.Key.Roles.Team == store.TeamInvite && inv.InvitedBy == c.Key.OwnerID {
		return nil
	}
	return Forbidden("Revoking an invitation needs the administrator flag or the team manager role (invite-only members revoke their own).")
}

// RequireAuditReader refuses callers who may not read the audit log. The
// log shows every principal's actions in the account, so it is for those
// who oversee the account (docs/api-compatibility.md#roles):
// administrators and users with the team manager role. Developers see the
// objects themselves but not who changed what; bot users act as read/write
// developers with no other permission, so they are refused too (give an
// export job a key owned by an administrator's user instead).
func (c *Caller) RequireAuditReader() error {
	if c.Key.Roles.Admin || (c.Key.OwnerKind == snapshot.PrincipalUser && c.Key.Roles.Team == store.TeamManager) {
		return nil
	}
	return Forbidden("Reading the audit log needs the administrator flag or the team manager role.")
}

// CanInvite reports whether the caller may invite anyone at all (what
// CheckInvite then narrows by the roles asked for).
func (c *Caller) CanInvite() bool {
	return c.IsTeamManager() || (!c.IsBot() && c.Key.Roles.Team == store.TeamInvite)
}

// AccessCheck refuses a caller who may not change or delete object id of
// their account.
type AccessCheck func(ctx context.Context, c *Caller, id string) error

// WriterAccess lets the read/write roles change any object of the account
// (RequireWrite).
func WriterAccess(_ context.Context, c *Caller, _ string) error { return c.RequireWrite() }

// OwnerAccess is the AccessCheck of a credential: it reads the credential
// with get (a missing one is a 404 that names what and the ID), then
// refuses a caller who is neither its owner nor an administrator
// (RequireOwnerOrAdmin).
func OwnerAccess[T any](what string, get func(ctx context.Context, accountID, id string) (*T, error),
	owner func(*T) string) AccessCheck {
	return func(ctx context.Context, c *Caller, id string) error {
		v, err := get(ctx, c.AccountID(), id)
		if err != nil {
			return NotFound(err, what, id)
		}
		return c.RequireOwnerOrAdmin(owner(v))
	}
}

// APIKeyAccess lets an API key's owner and administrators change or delete
// it (OwnerAccess).
func APIKeyAccess(st *store.Store) AccessCheck {
	return OwnerAccess("API key", st.GetAPIKey, func(k *store.APIKey) string { return k.OwnerID })
}

// AuthtokenAccess lets an authtoken's owner and administrators change or
// delete it (OwnerAccess).
func AuthtokenAccess(st *store.Store) AccessCheck {
	return OwnerAccess("credential", st.GetAuthtoken, func(a *store.Authtoken) string { return a.OwnerID })
}

// SSHCredentialAccess lets an SSH credential's owner and administrators
// change or delete it (OwnerAccess).
func SSHCredentialAccess(st *store.Store) AccessCheck {
	return OwnerAccess("SSH credential", st.GetSSHCredential, func(c *store.SSHCredential) string { return c.OwnerID })
}
