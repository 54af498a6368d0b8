package controlplane

import (
	"errors"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

// caller is the authenticated principal of an API request.
type caller struct {
	auth  *store.APIKeyAuth
	actor store.Actor
}

// accountID is the account the request acts in: the API key's.
func (c *caller) accountID() string { return c.auth.AccountID }

// isAdmin reports whether the caller has the administrator flag.
func (c *caller) isAdmin() bool { return c.auth.Roles.Admin }

// canWrite reports whether the caller may create, change and delete
// resources: administrators and read/write developers (bot users are
// read/write developers).
func (c *caller) canWrite() bool {
	return c.auth.Roles.Admin || c.auth.Roles.Developer == store.DeveloperRW
}

// requireWrite refuses callers who may only read.
func (c *caller) requireWrite() error {
	if !c.canWrite() {
		return forbidden("Your role in this account is read-only: ask an administrator for the read/write developer role.")
	}
	return nil
}

// requireOwnerOrAdmin refuses a non-administrator acting on a credential
// owned by another principal.
func (c *caller) requireOwnerOrAdmin(ownerID string) error {
	if err := c.requireWrite(); err != nil {
		return err
	}
	if ownerID != c.auth.OwnerID && !c.isAdmin() {
		return forbidden("Only administrators may manage credentials owned by another user or bot user.")
	}
	return nil
}

// requireTeamManager refuses callers who may not manage principals: only
// administrators and users with the team manager role manage bot users and
// change or remove users.
func (c *caller) requireTeamManager() error {
	if c.isTeamManager() {
		return nil
	}
	return forbidden("Managing users and bot users needs the administrator flag or the team manager role.")
}

// isBot reports whether the caller is a bot user.
func (c *caller) isBot() bool { return c.auth.OwnerKind == snapshot.PrincipalBot }

// isTeamManager reports whether the caller is an administrator or a user
// with the team manager role.
func (c *caller) isTeamManager() bool {
	return c.auth.Roles.Admin || (!c.isBot() && c.auth.Roles.Team == store.TeamManager)
}

// requireAdmin refuses callers without the administrator flag.
func (c *caller) requireAdmin(what string) error {
	if c.isAdmin() {
		return nil
	}
	return forbidden("Only administrators may %s.", what)
}

// requireUser refuses bot users. Bot users act as read/write developers
// and hold no team, billing or administrator role
// (reference/platform-behaviour.md §1.5): they do not see the account's
// users and invitations, and cannot switch accounts or log in.
func (c *caller) requireUser(what string) error {
	if c.isBot() {
		return forbidden("Bot users may not %s: they act as read/write developers only. Use a user's API key.", what)
	}
	return nil
}

// checkRoleChange decides whether the caller may change a member's roles
// from cur to next (users.go runs it inside the unit of work): administrators
// change anyone's; team managers change those of members who are not
// administrators, and never grant or revoke the administrator flag.
func (c *caller) checkRoleChange(cur, next store.Membership) error {
	if c.isAdmin() {
		return nil
	}
	if !c.isTeamManager() {
		return forbidden("Changing a user's roles needs the administrator flag or the team manager role.")
	}
	if cur.Admin {
		return forbidden("Only administrators may change an administrator's roles.")
	}
	if next.Admin {
		return forbidden("Only administrators may grant the administrator flag.")
	}
	return nil
}

// checkRemoveMember decides whether the caller may remove member userID,
// whose roles are cur, from the account: any user may leave (remove
// themselves); administrators remove anyone; team managers remove members
// who are not administrators. The store keeps the last administrator.
func (c *caller) checkRemoveMember(userID string, cur store.Membership) error {
	if !c.isBot() && userID == c.auth.OwnerID {
		return nil
	}
	if c.isAdmin() {
		return nil
	}
	if !c.isTeamManager() {
		return forbidden("Removing a user needs the administrator flag or the team manager role.")
	}
	if cur.Admin {
		return forbidden("Only administrators may remove an administrator.")
	}
	return nil
}

// checkInvite decides whether the caller may invite someone with the roles
// of in. Administrators grant any roles; team managers any roles but the
// administrator flag; team invite-only members grant at most what they
// hold themselves (developer rw only if they have it, team invite or ro,
// billing only if they have it, never administrator), so inviting is never
// a way to raise one's own access.
func (c *caller) checkInvite(in store.InvitationCreate) error {
	if c.isAdmin() {
		return nil
	}
	if c.isBot() {
		return forbidden("Bot users may not invite users.")
	}
	if in.Admin {
		return forbidden("Only administrators may invite an administrator.")
	}
	switch c.auth.Roles.Team {
	case store.TeamManager:
		return nil
	case store.TeamInvite:
		if in.Team == store.TeamManager {
			return forbidden("Team invite-only members may not invite a team manager; ask a team manager.")
		}
		if in.Developer == store.DeveloperRW && c.auth.Roles.Developer != store.DeveloperRW {
			return forbidden("You may not grant the read/write developer role, which you do not hold.")
		}
		if in.Billing && !c.auth.Roles.Billing {
			return forbidden("You may not grant billing access, which you do not hold.")
		}
		return nil
	}
	return forbidden("Inviting users needs the administrator flag or the team manager or invite-only role.")
}

// checkRevokeInvitation decides whether the caller may delete an
// invitation: administrators and team managers any; team invite-only
// members those they created.
func (c *caller) checkRevokeInvitation(inv *store.Invitation) error {
	if c.isTeamManager() {
		return nil
	}
	if !c.isBot() && c.auth.Roles.Team == store.TeamInvite && inv.InvitedBy == c.auth.OwnerID {
		return nil
	}
	return forbidden("Revoking an invitation needs the administrator flag or the team manager role (invite-only members revoke their own).")
}

// authenticate checks the request's API key: "Authorization: Bearer
// <KSUID>_<secret>", where ak_<KSUID> names the key
// (reference/platform-behaviour.md §1.2). The secret's hash is compared in
// constant time; the key's account must be active and its owner active and
// still a member.
func (s *Server) authenticate(r *http.Request) (*caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, newAPIError(http.StatusUnauthorized, codes.APIAuthMissing,
			"The API needs an API key: send the header 'Authorization: Bearer <API key>'.")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, newAPIError(http.StatusUnauthorized, codes.APIAuthParse,
			"The Authorization header could not be parsed: send 'Authorization: Bearer <API key>'.")
	}
	tok = strings.TrimSpace(tok)
	if _, _, err := ids.Split(tok, ids.PrefixAPIKey); err == nil {
		return nil, newAPIError(http.StatusUnauthorized, codes.APIKeyID,
			"You sent an API key's ID (ak_...), not the API key itself. Send the token that was shown when the key was created, or create a new key.")
	}
	kid, secret, err := authn.ParseToken(tok)
	if err != nil {
		return nil, newAPIError(http.StatusUnauthorized, codes.APIAuthMalformed,
			"The API key is malformed: it has the form <27 characters>_<secret>. Copy it again exactly as it was shown.")
	}
	key, err := s.store.LookupAPIKey(r.Context(), ids.PrefixAPIKey+"_"+kid)
	if errors.Is(err, store.ErrNotFound) {
		if isAuthtoken, aerr := s.store.AuthtokenExists(r.Context(), ids.PrefixAuthtoken+"_"+kid); aerr != nil {
			return nil, aerr
		} else if isAuthtoken {
			return nil, newAPIError(http.StatusUnauthorized, codes.APIAuthtoken,
				"You sent an authtoken, which agents use. The API needs an API key: create one with POST /api_keys or in the dashboard.")
		}
		return nil, newAPIError(http.StatusUnauthorized, codes.APIAuthInvalid,
			"The API key is not valid: it may have been deleted or mistyped.")
	}
	if err != nil {
		return nil, err
	}
	if !authn.SecretMatches(secret, key.SecretHash) {
		return nil, newAPIError(http.StatusUnauthorized, codes.APIAuthInvalid,
			"The API key is not valid: it may have been deleted or mistyped.")
	}
	if !key.AccountActive {
		return nil, newAPIError(http.StatusForbidden, codes.APIAccountSuspended,
			"The account %s is suspended; its API keys do not work until it is reactivated.", key.AccountID)
	}
	if !key.OwnerActive {
		return nil, newAPIError(http.StatusForbidden, codes.APIPrincipalInactive,
			"The API key's owner %s is deactivated. Ask an administrator to reactivate it, or use another key.", key.OwnerID)
	}
	if !key.Member {
		return nil, forbidden("The API key's owner %s is no longer a member of account %s.", key.OwnerID, key.AccountID)
	}
	return &caller{auth: key, actor: store.Actor{AccountID: key.AccountID, PrincipalID: key.OwnerID, CredentialID: key.KeyID}}, nil
}
