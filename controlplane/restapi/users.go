package controlplane

import (
	"errors"
	"net/http"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// userRoutes registers /users, /invitations and /accounts. The rules are in
// doc.go ("Users, invitations and accounts") and api_auth.go.
func (s *Server) userRoutes(mux *http.ServeMux) {
	s.route(mux, "/users", methods{http.MethodGet: s.listUsers})
	s.route(mux, "/users/{id}", methods{http.MethodGet: s.getUser, http.MethodPatch: s.updateUser, http.MethodDelete: s.deleteUser})
	s.route(mux, "/invitations", methods{http.MethodGet: s.listInvitations, http.MethodPost: s.createInvitation})
	s.route(mux, "/invitations/{id}", methods{http.MethodGet: s.getInvitation, http.MethodDelete: s.deleteInvitation})
	// Accepting needs no API key (the accept token is the credential), but
	// takes one when given: the proof of being an existing user.
	mux.HandleFunc("/invitations/accept", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			s.serve(w, r, func(http.ResponseWriter, *http.Request, *caller) error {
				return newAPIError(http.StatusMethodNotAllowed, codes.APIMethodNotAllowed,
					"/invitations/accept does not support %s; use POST.", r.Method)
			}, false)
			return
		}
		s.serve(w, r, s.acceptInvitation, r.Header.Get("Authorization") != "")
	})
	s.route(mux, "/accounts", methods{http.MethodGet: s.listAccounts})
	s.route(mux, "/accounts/{id}", methods{http.MethodGet: s.getAccount, http.MethodPatch: s.updateAccount})
	s.route(mux, "/accounts/{id}/api_keys", methods{http.MethodPost: s.createAccountAPIKey})
}

// userJSON is a user as a member of the caller's account: who they are and
// their roles there (reference/platform-behaviour.md §7.2). created_at is
// when the user was created, joined_at when they joined this account.
type userJSON struct {
	ID        string `json:"id"`
	URI       string `json:"uri"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	Active    bool   `json:"active"`
	CreatedAt string `json:"created_at"`
	JoinedAt  string `json:"joined_at"`
	Developer string `json:"developer"` // rw | ro
	Team      string `json:"team"`      // manager | invite | ro
	Billing   bool   `json:"billing"`
	Admin     bool   `json:"admin"`
}

// userUpdateBody is PATCH /users/{id}; absent fields stay as they are.
type userUpdateBody struct {
	Developer *string `json:"developer"`
	Team      *string `json:"team"`
	Billing   *bool   `json:"billing"`
	Admin     *bool   `json:"admin"`
}

// invitationJSON is the invitations object. AcceptToken is set only in the
// create response; null otherwise.
type invitationJSON struct {
	ID          string  `json:"id"`
	URI         string  `json:"uri"`
	Email       string  `json:"email"`
	Developer   string  `json:"developer"`
	Team        string  `json:"team"`
	Billing     bool    `json:"billing"`
	Admin       bool    `json:"admin"`
	InvitedBy   string  `json:"invited_by"`
	CreatedAt   string  `json:"created_at"`
	ExpiresAt   string  `json:"expires_at"`
	AcceptToken *string `json:"accept_token"`
}

// invitationCreateBody is POST /invitations. Roles default to the least:
// developer ro, team ro, no billing, not administrator.
type invitationCreateBody struct {
	Email     string `json:"email"`
	Developer string `json:"developer"`
	Team      string `json:"team"`
	Billing   bool   `json:"billing"`
	Admin     bool   `json:"admin"`
}

// invitationAcceptBody is POST /invitations/accept.
type invitationAcceptBody struct {
	Token       string `json:"token"`
	Name        string `json:"name"`        // required for a new user
	Description string `json:"description"` // of the API key created
}

// acceptJSON is the response to POST /invitations/accept.
type acceptJSON struct {
	User    userJSON    `json:"user"`
	Account accountJSON `json:"account"`
	APIKey  apiKeyJSON  `json:"api_key"`
}

// rolesJSON is a principal's roles in an account. Team is "" for a bot
// user, which has only the developer rw role.
type rolesJSON struct {
	Developer string `json:"developer"`
	Team      string `json:"team"`
	Billing   bool   `json:"billing"`
	Admin     bool   `json:"admin"`
}

// accountJSON is an account the caller belongs to. Current is true for the
// account of the API key in use; Roles are the caller's roles there.
type accountJSON struct {
	ID        string    `json:"id"`
	URI       string    `json:"uri"`
	Name      string    `json:"name"`
	Active    bool      `json:"active"`
	CreatedAt string    `json:"created_at"`
	Current   bool      `json:"current"`
	Roles     rolesJSON `json:"roles"`
}

type accountUpdateBody struct {
	Name *string `json:"name"`
}

func (s *Server) userJSON(r *http.Request, m *store.Member) userJSON {
	return userJSON{ID: m.User.ID, URI: s.baseURL(r) + "/users/" + m.User.ID, Email: m.User.Email, Name: m.User.Name,
		Active: m.User.Active, CreatedAt: timestamp(m.User.CreatedAt), JoinedAt: timestamp(m.Roles.CreatedAt),
		Developer: string(m.Roles.Developer), Team: string(m.Roles.Team), Billing: m.Roles.Billing, Admin: m.Roles.Admin}
}

func (s *Server) invitationJSON(r *http.Request, inv *store.Invitation) invitationJSON {
	return invitationJSON{ID: inv.ID, URI: s.baseURL(r) + "/invitations/" + inv.ID, Email: inv.Email,
		Developer: string(inv.Developer), Team: string(inv.Team), Billing: inv.Billing, Admin: inv.Admin,
		InvitedBy: inv.InvitedBy, CreatedAt: timestamp(inv.CreatedAt), ExpiresAt: timestamp(inv.ExpiresAt)}
}

func (s *Server) accountJSON(r *http.Request, a *store.Account, roles store.Membership, current bool) accountJSON {
	return accountJSON{ID: a.ID, URI: s.baseURL(r) + "/accounts/" + a.ID, Name: a.Name, Active: a.Active,
		CreatedAt: timestamp(a.CreatedAt), Current: current, Roles: rolesJSON{Developer: string(roles.Developer),
			Team: string(roles.Team), Billing: roles.Billing, Admin: roles.Admin}}
}

// ---- /users ----

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, c *caller) error {
	page, err := listParams(r, ids.PrefixUser)
	if err != nil {
		return err
	}
	if err := c.requireUser("list the account's users"); err != nil {
		return err
	}
	list, more, err := s.store.ListMembers(r.Context(), c.accountID(), page)
	if err != nil {
		return err
	}
	items := make([]userJSON, len(list))
	last := ""
	for i := range list {
		items[i] = s.userJSON(r, &list[i])
		last = list[i].User.ID
	}
	s.listResponse(w, r, "users", items, more, last, page)
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := objectPathID(r, ids.PrefixUser)
	if err != nil {
		return err
	}
	if err := c.requireUser("read the account's users"); err != nil {
		return err
	}
	m, err := s.store.GetMember(r.Context(), c.accountID(), id)
	if err != nil {
		return notFound(err, "user", id)
	}
	writeJSON(w, http.StatusOK, s.userJSON(r, m))
	return nil
}

// updateUser changes a member's roles (checkRoleChange decides, inside the
// store's unit of work, on the member's current roles). The last active
// administrator keeps the flag (codes.LastAdmin, 409).
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body userUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixUser, nil, &body)
	if err != nil {
		return err
	}
	if err := c.requireTeamManager(); err != nil {
		return err
	}
	in := store.MemberUpdate{Billing: body.Billing, Admin: body.Admin}
	if body.Developer != nil {
		d := store.DeveloperRole(*body.Developer)
		in.Developer = &d
	}
	if body.Team != nil {
		t := store.TeamRole(*body.Team)
		in.Team = &t
	}
	m, err := s.store.UpdateMember(r.Context(), c.actor, c.accountID(), id, in, func(cur store.Membership) error {
		next := cur
		if in.Admin != nil {
			next.Admin = *in.Admin
		}
		return c.checkRoleChange(cur, next)
	})
	if err != nil {
		return notFound(err, "user", id)
	}
	writeJSON(w, http.StatusOK, s.userJSON(r, m))
	return nil
}

// deleteUser removes a member from the caller's account and deletes, in the
// same unit of work, every credential they own in it.
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := objectPathID(r, ids.PrefixUser)
	if err != nil {
		return err
	}
	if err := c.requireUser("remove users"); err != nil {
		return err
	}
	_, err = s.store.RemoveMember(r.Context(), c.actor, c.accountID(), id, func(cur store.Membership) error {
		return c.checkRemoveMember(id, cur)
	})
	if err != nil {
		return notFound(err, "user", id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- /invitations ----

// invite creates an invitation for the caller's account, as POST
// /invitations and the dashboard's users page do: empty roles default to
// developer ro and team ro; the roles must be valid and the caller allowed
// to grant them (checkInvite). It returns the invitation and its accept
// token, to be shown once.
func (s *Server) invite(r *http.Request, c *caller, in store.InvitationCreate) (*store.Invitation, authn.Token, error) {
	if in.Developer == "" {
		in.Developer = store.DeveloperRO
	}
	if in.Team == "" {
		in.Team = store.TeamRO
	}
	if err := store.ValidateRoles(store.Membership{Developer: in.Developer, Team: in.Team}); err != nil {
		return nil, "", err
	}
	if err := c.checkInvite(in); err != nil {
		return nil, "", err
	}
	return s.store.CreateInvitation(r.Context(), c.actor, c.accountID(), in)
}

func (s *Server) createInvitation(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body invitationCreateBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	inv, tok, err := s.invite(r, c, store.InvitationCreate{Email: body.Email, Developer: store.DeveloperRole(body.Developer),
		Team: store.TeamRole(body.Team), Billing: body.Billing, Admin: body.Admin})
	if err != nil {
		return err
	}
	out := s.invitationJSON(r, inv)
	secret := tok.Reveal() // shown once, to the inviter, who passes it on
	out.AcceptToken = &secret
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) listInvitations(w http.ResponseWriter, r *http.Request, c *caller) error {
	page, err := listParams(r, ids.PrefixInvitation)
	if err != nil {
		return err
	}
	if err := c.requireUser("list the account's invitations"); err != nil {
		return err
	}
	list, more, err := s.store.ListInvitations(r.Context(), c.accountID(), page)
	if err != nil {
		return err
	}
	items := make([]invitationJSON, len(list))
	last := ""
	for i := range list {
		items[i] = s.invitationJSON(r, &list[i])
		last = list[i].ID
	}
	s.listResponse(w, r, "invitations", items, more, last, page)
	return nil
}

func (s *Server) getInvitation(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := objectPathID(r, ids.PrefixInvitation)
	if err != nil {
		return err
	}
	if err := c.requireUser("read the account's invitations"); err != nil {
		return err
	}
	inv, err := s.store.GetInvitation(r.Context(), c.accountID(), id)
	if err != nil {
		return notFound(err, "invitation", id)
	}
	writeJSON(w, http.StatusOK, s.invitationJSON(r, inv))
	return nil
}

func (s *Server) deleteInvitation(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := objectPathID(r, ids.PrefixInvitation)
	if err != nil {
		return err
	}
	if err := c.requireUser("revoke invitations"); err != nil {
		return err
	}
	if err := s.store.DeleteInvitation(r.Context(), c.actor, c.accountID(), id, c.checkRevokeInvitation); err != nil {
		return notFound(err, "invitation", id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// acceptInvitation is POST /invitations/accept {token, name, description}.
// The accept token is the credential. When the invited address belongs to
// an existing user, the request must also carry an API key of that user
// (any account) that the user created themselves, proving who they are;
// otherwise a new user is created with the given name. The response (201)
// holds the member, the account and a new API key of the user in that
// account, whose token is shown once.
func (s *Server) acceptInvitation(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body invitationAcceptBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	in := store.InvitationAccept{Token: body.Token, Name: body.Name, Description: body.Description}
	if c != nil {
		if err := s.requireIdentityKey(r, c); err != nil {
			return err
		}
		in.ExistingUserID = c.auth.OwnerID
	}
	acc, err := s.store.AcceptInvitation(r.Context(), in)
	var ce *codes.Error
	switch {
	case errors.Is(err, store.ErrExistingUser):
		return newAPIError(http.StatusUnauthorized, codes.APIAuthMissing,
			"This invitation is for an existing user: send one of your own API keys (from any of your accounts) in the Authorization header with the token.")
	case errors.As(err, &ce) && ce.Code == codes.InvitationInvalid:
		return newAPIError(http.StatusNotFound, ce.Code, "%s", ce.Message)
	case errors.As(err, &ce) && ce.Code == codes.InvitationExpired:
		return newAPIError(http.StatusGone, ce.Code, "%s", ce.Message)
	case errors.As(err, &ce) && ce.Code == codes.APIPrincipalInactive:
		return newAPIError(http.StatusForbidden, ce.Code, "%s", ce.Message)
	case err != nil:
		return err
	}
	key := s.apiKeyJSON(r, &acc.APIKey)
	secret := acc.Token.Reveal() // shown once, to the new member
	key.Token = &secret
	writeJSON(w, http.StatusCreated, acceptJSON{
		User:    s.userJSON(r, &acc.Member),
		Account: s.accountJSON(r, &acc.Account, acc.Member.Roles, false),
		APIKey:  key,
	})
	return nil
}

// requireIdentityKey refuses an API key that does not prove its owner's
// identity beyond its own account: bot users' keys, and keys that someone
// other than the owner created (an administrator may create API keys owned
// by any member of their account; such a key must not reach the member's
// other accounts). The creator comes from the audit log, written in the
// key's own unit of work; keys the control plane made itself (bootstrap)
// count as the owner's.
func (s *Server) requireIdentityKey(r *http.Request, c *caller) error {
	if err := c.requireUser("act across accounts"); err != nil {
		return err
	}
	creator, err := s.store.APIKeyCreator(r.Context(), c.accountID(), c.auth.KeyID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil || (creator != c.auth.OwnerID && creator != store.SystemActor.PrincipalID) {
		return forbidden("This API key was created for you by someone else, so it acts only in its own account. Use an API key you created yourself.")
	}
	return nil
}

// ---- /accounts ----

// listAccounts lists the accounts the caller's user belongs to, with their
// roles in each; a bot user sees only its own account.
func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, c *caller) error {
	page, err := listParams(r, ids.PrefixAccount)
	if err != nil {
		return err
	}
	var (
		items = []accountJSON{}
		more  bool
		last  string
	)
	if c.isBot() {
		a, err := s.store.GetAccount(r.Context(), c.accountID())
		if err != nil {
			return err
		}
		if page.BeforeID == "" || a.ID < page.BeforeID {
			items = append(items, s.accountJSON(r, a, c.auth.Roles, true))
		}
	} else {
		list, m, err := s.store.ListAccountsOf(r.Context(), c.auth.OwnerID, page)
		if err != nil {
			return err
		}
		more = m
		for i := range list {
			items = append(items, s.accountJSON(r, &list[i].Account, list[i].Roles, list[i].Account.ID == c.accountID()))
			last = list[i].Account.ID
		}
	}
	s.listResponse(w, r, "accounts", items, more, last, page)
	return nil
}

// callerAccount returns account id with the caller's roles there, or
// not found when the caller does not belong to it.
func (s *Server) callerAccount(r *http.Request, c *caller, id string) (*store.Account, store.Membership, error) {
	if id == c.accountID() {
		a, err := s.store.GetAccount(r.Context(), id)
		return a, c.auth.Roles, err
	}
	if c.isBot() {
		return nil, store.Membership{}, notFound(store.ErrNotFound, "account", id)
	}
	m, err := s.store.GetMembership(r.Context(), id, c.auth.OwnerID)
	if err != nil {
		return nil, store.Membership{}, notFound(err, "account", id)
	}
	a, err := s.store.GetAccount(r.Context(), id)
	if err != nil {
		return nil, store.Membership{}, notFound(err, "account", id)
	}
	return a, *m, nil
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := objectPathID(r, ids.PrefixAccount)
	if err != nil {
		return err
	}
	a, roles, err := s.callerAccount(r, c, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.accountJSON(r, a, roles, id == c.accountID()))
	return nil
}

// updateAccount renames the caller's account: account settings are for
// administrators only (reference/platform-behaviour.md §7.2). Another
// account is changed with an API key of that account.
func (s *Server) updateAccount(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body accountUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixAccount, nil, &body)
	if err != nil {
		return err
	}
	if id != c.accountID() {
		if _, _, err := s.callerAccount(r, c, id); err != nil {
			return err
		}
		return forbidden("This API key acts in account %s; change account %s with an API key of that account (POST /accounts/%s/api_keys).",
			c.accountID(), id, id)
	}
	if err := c.requireAdmin("change the account's settings"); err != nil {
		return err
	}
	a, err := s.store.GetAccount(r.Context(), id)
	if err != nil {
		return notFound(err, "account", id)
	}
	if body.Name != nil {
		if a, err = s.store.RenameAccount(r.Context(), c.actor, id, *body.Name); err != nil {
			return notFound(err, "account", id)
		}
	}
	writeJSON(w, http.StatusOK, s.accountJSON(r, a, c.auth.Roles, true))
	return nil
}

// createAccountAPIKey is POST /accounts/{id}/api_keys {description,
// metadata}: it switches accounts. It creates an API key owned by the
// caller's user in another account the user belongs to, authenticated by
// an API key of the user in any of their accounts (one they created
// themselves: requireIdentityKey). Every member may hold API keys in every
// account they belong to, whatever their roles there; the key carries only
// the user's roles in its account. Keys in the caller's own account are
// made with POST /api_keys, under its rules.
func (s *Server) createAccountAPIKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body apiKeyCreateBody
	id, err := s.beginWrite(w, r, ids.PrefixAccount, nil, &body)
	if err != nil {
		return err
	}
	if err := c.requireUser("switch accounts"); err != nil {
		return err
	}
	if body.OwnerID != "" && body.OwnerID != c.auth.OwnerID {
		return forbidden("An API key made in another account is always your own; leave owner_id out.")
	}
	if id == c.accountID() {
		return badRequest(codes.APIInvalidParam, "This API key already acts in %s: create keys here with POST /api_keys.", id)
	}
	a, _, err := s.callerAccount(r, c, id)
	if err != nil {
		return err
	}
	if !a.Active {
		return newAPIError(http.StatusForbidden, codes.APIAccountSuspended,
			"The account %s is suspended; its API keys do not work until it is reactivated.", id)
	}
	if err := s.requireIdentityKey(r, c); err != nil {
		return err
	}
	// The unit of work is the target account's: its audit log shows the
	// key's creation by the user, with the key from the other account.
	actor := store.Actor{AccountID: id, PrincipalID: c.auth.OwnerID, CredentialID: c.auth.KeyID}
	desc := body.Description
	if desc == "" {
		desc = "created from account " + c.accountID()
	}
	k, tok, err := s.store.CreateAPIKey(r.Context(), actor, id,
		store.APIKeyCreate{OwnerID: c.auth.OwnerID, Description: desc, Metadata: body.Metadata})
	if errors.Is(err, store.ErrOwnerNotFound) { // left the account meanwhile
		return notFound(store.ErrNotFound, "account", id)
	}
	if err != nil {
		return err
	}
	out := s.apiKeyJSON(r, k)
	secret := tok.Reveal()
	out.Token = &secret
	writeJSON(w, http.StatusCreated, out)
	return nil
}
