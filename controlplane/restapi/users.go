package restapi

import (
	"errors"
	"net/http"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// userAPI serves /users, /invitations and /accounts.
type userAPI struct{ *Server }

// routes registers /users, /invitations and /accounts. The rules are in
// doc.go ("Users, invitations and accounts") and the controlplane
// package's rbac.go.
func (s *userAPI) routes(mux *http.ServeMux) {
	s.route(mux, "/users", methods{http.MethodGet: s.listUsers})
	s.route(mux, "/users/{id}", methods{http.MethodGet: s.getUser, http.MethodPatch: s.updateUser, http.MethodDelete: s.deleteUser})
	s.route(mux, "/invitations", methods{http.MethodGet: s.listInvitations, http.MethodPost: s.createInvitation})
	s.route(mux, "/invitations/{id}", methods{http.MethodGet: s.getInvitation, http.MethodDelete: s.deleteInvitation})
	// Accepting needs no API key (the accept token is the credential), but
	// takes one when given: the proof of being an existing user.
	mux.HandleFunc("/invitations/accept", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			s.core.Serve(w, r, func(http.ResponseWriter, *http.Request, *controlplane.Caller) error {
				return controlplane.Errorf(http.StatusMethodNotAllowed, codes.APIMethodNotAllowed,
					"/invitations/accept does not support %s; use POST.", r.Method)
			}, false)
			return
		}
		s.core.Serve(w, r, s.acceptInvitation, r.Header.Get("Authorization") != "")
	})
	s.route(mux, "/accounts", methods{http.MethodGet: s.listAccounts})
	s.route(mux, "/accounts/{id}", methods{http.MethodGet: s.getAccount, http.MethodPatch: s.updateAccount})
	s.route(mux, "/accounts/{id}/api_keys", methods{http.MethodPost: s.createAccountAPIKey})
}

// userJSON is a user as a member of the caller's account: who they are and
// their roles there (docs/api-compatibility.md#roles). created_at is
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

func (s *userAPI) userJSON(r *http.Request, m *store.Member) userJSON {
	return userJSON{ID: m.User.ID, URI: s.baseURL(r) + "/users/" + m.User.ID, Email: m.User.Email, Name: m.User.Name,
		Active: m.User.Active, CreatedAt: timestamp(m.User.CreatedAt), JoinedAt: timestamp(m.Roles.CreatedAt),
		Developer: string(m.Roles.Developer), Team: string(m.Roles.Team), Billing: m.Roles.Billing, Admin: m.Roles.Admin}
}

func (s *userAPI) invitationJSON(r *http.Request, inv *store.Invitation) invitationJSON {
	return invitationJSON{ID: inv.ID, URI: s.baseURL(r) + "/invitations/" + inv.ID, Email: inv.Email,
		Developer: string(inv.Developer), Team: string(inv.Team), Billing: inv.Billing, Admin: inv.Admin,
		InvitedBy: inv.InvitedBy, CreatedAt: timestamp(inv.CreatedAt), ExpiresAt: timestamp(inv.ExpiresAt)}
}

func (s *userAPI) accountJSON(r *http.Request, a *store.Account, roles store.Membership, current bool) accountJSON {
	return accountJSON{ID: a.ID, URI: s.baseURL(r) + "/accounts/" + a.ID, Name: a.Name, Active: a.Active,
		CreatedAt: timestamp(a.CreatedAt), Current: current, Roles: rolesJSON{Developer: string(roles.Developer),
			Team: string(roles.Team), Billing: roles.Billing, Admin: roles.Admin}}
}

// ---- /users ----

func (s *userAPI) listUsers(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	page, err := listParams(r, ids.PrefixUser)
	if err != nil {
		return err
	}
	if err := c.RequireUser("list the account's users"); err != nil {
		return err
	}
	list, more, err := s.store.ListMembers(r.Context(), c.AccountID(), page)
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

func (s *userAPI) getUser(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := objectPathID(r, ids.PrefixUser)
	if err != nil {
		return err
	}
	if err := c.RequireUser("read the account's users"); err != nil {
		return err
	}
	m, err := s.store.GetMember(r.Context(), c.AccountID(), id)
	if err != nil {
		return controlplane.NotFound(err, "user", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.userJSON(r, m))
	return nil
}

// updateUser changes a member's roles (checkRoleChange decides, inside the
// store's unit of work, on the member's current roles). The last active
// administrator keeps the flag (codes.LastAdmin, 409).
func (s *userAPI) updateUser(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body userUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixUser, nil, &body)
	if err != nil {
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
	m, err := s.core.UpdateMemberRoles(r.Context(), c, id, in)
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusOK, s.userJSON(r, m))
	return nil
}

// deleteUser removes a member from the caller's account and deletes, in the
// same unit of work, every credential they own in it.
func (s *userAPI) deleteUser(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := objectPathID(r, ids.PrefixUser)
	if err != nil {
		return err
	}
	if err := s.core.RemoveMember(r.Context(), c, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- /invitations ----

func (s *userAPI) createInvitation(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body invitationCreateBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	inv, tok, err := s.core.Invite(r.Context(), c, store.InvitationCreate{Email: body.Email, Developer: store.DeveloperRole(body.Developer),
		Team: store.TeamRole(body.Team), Billing: body.Billing, Admin: body.Admin})
	if err != nil {
		return err
	}
	out := s.invitationJSON(r, inv)
	secret := tok.Reveal() // shown once, to the inviter, who passes it on
	out.AcceptToken = &secret
	controlplane.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (s *userAPI) listInvitations(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	page, err := listParams(r, ids.PrefixInvitation)
	if err != nil {
		return err
	}
	if err := c.RequireUser("list the account's invitations"); err != nil {
		return err
	}
	list, more, err := s.store.ListInvitations(r.Context(), c.AccountID(), page)
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

func (s *userAPI) getInvitation(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := objectPathID(r, ids.PrefixInvitation)
	if err != nil {
		return err
	}
	if err := c.RequireUser("read the account's invitations"); err != nil {
		return err
	}
	inv, err := s.store.GetInvitation(r.Context(), c.AccountID(), id)
	if err != nil {
		return controlplane.NotFound(err, "invitation", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.invitationJSON(r, inv))
	return nil
}

func (s *userAPI) deleteInvitation(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := objectPathID(r, ids.PrefixInvitation)
	if err != nil {
		return err
	}
	if err := c.RequireUser("revoke invitations"); err != nil {
		return err
	}
	if err := s.store.DeleteInvitation(r.Context(), c.Actor, c.AccountID(), id, c.CheckRevokeInvitation); err != nil {
		return controlplane.NotFound(err, "invitation", id)
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
func (s *userAPI) acceptInvitation(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body invitationAcceptBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	in := store.InvitationAccept{Token: body.Token, Name: body.Name, Description: body.Description}
	if c != nil {
		if err := s.requireIdentityKey(r, c); err != nil {
			return err
		}
		in.ExistingUserID = c.Key.OwnerID
	}
	acc, err := s.store.AcceptInvitation(r.Context(), in)
	var ce *codes.Error
	switch {
	case errors.Is(err, store.ErrExistingUser):
		return controlplane.Errorf(http.StatusUnauthorized, codes.APIAuthMissing,
			"This invitation is for an existing user: send one of your own API keys (from any of your accounts) in the Authorization header with the token.")
	case errors.As(err, &ce) && ce.Code == codes.InvitationInvalid:
		// A wrong token is a failed authentication: charged to the client
		// address's failure budget, and past it answered 429.
		if tooMany := s.core.ChargeAuthFailure(w, r, "This address sent too many invalid invitation tokens; check the token."); tooMany != nil {
			return tooMany
		}
		return controlplane.Errorf(http.StatusNotFound, ce.Code, "%s", ce.Message)
	case errors.As(err, &ce) && ce.Code == codes.InvitationExpired:
		return controlplane.Errorf(http.StatusGone, ce.Code, "%s", ce.Message)
	case errors.As(err, &ce) && ce.Code == codes.APIPrincipalInactive:
		return controlplane.Errorf(http.StatusForbidden, ce.Code, "%s", ce.Message)
	case err != nil:
		return err
	}
	key := s.apiKeyJSON(r, &acc.APIKey)
	secret := acc.Token.Reveal() // shown once, to the new member
	key.Token = &secret
	controlplane.WriteJSON(w, http.StatusCreated, acceptJSON{
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
func (s *userAPI) requireIdentityKey(r *http.Request, c *controlplane.Caller) error {
	if err := c.RequireUser("act across accounts"); err != nil {
		return err
	}
	creator, err := s.store.APIKeyCreator(r.Context(), c.AccountID(), c.Key.KeyID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil || (creator != c.Key.OwnerID && creator != store.SystemActor.PrincipalID) {
		return controlplane.Forbidden("This API key was created for you by someone else, so it acts only in its own account. Use an API key you created yourself.")
	}
	return nil
}

// ---- /accounts ----

// listAccounts lists the accounts the caller's user belongs to, with their
// roles in each; a bot user sees only its own account.
func (s *userAPI) listAccounts(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	page, err := listParams(r, ids.PrefixAccount)
	if err != nil {
		return err
	}
	var (
		items = []accountJSON{}
		more  bool
		last  string
	)
	if c.IsBot() {
		a, err := s.store.GetAccount(r.Context(), c.AccountID())
		if err != nil {
			return err
		}
		if page.BeforeID == "" || a.ID < page.BeforeID {
			items = append(items, s.accountJSON(r, a, c.Key.Roles, true))
		}
	} else {
		list, m, err := s.store.ListAccountsOf(r.Context(), c.Key.OwnerID, page)
		if err != nil {
			return err
		}
		more = m
		for i := range list {
			items = append(items, s.accountJSON(r, &list[i].Account, list[i].Roles, list[i].Account.ID == c.AccountID()))
			last = list[i].Account.ID
		}
	}
	s.listResponse(w, r, "accounts", items, more, last, page)
	return nil
}

// callerAccount returns account id with the caller's roles there, or
// not found when the caller does not belong to it.
func (s *userAPI) callerAccount(r *http.Request, c *controlplane.Caller, id string) (*store.Account, store.Membership, error) {
	if id == c.AccountID() {
		a, err := s.store.GetAccount(r.Context(), id)
		return a, c.Key.Roles, err
	}
	if c.IsBot() {
		return nil, store.Membership{}, controlplane.NotFound(store.ErrNotFound, "account", id)
	}
	m, err := s.store.GetMembership(r.Context(), id, c.Key.OwnerID)
	if err != nil {
		return nil, store.Membership{}, controlplane.NotFound(err, "account", id)
	}
	a, err := s.store.GetAccount(r.Context(), id)
	if err != nil {
		return nil, store.Membership{}, controlplane.NotFound(err, "account", id)
	}
	return a, *m, nil
}

func (s *userAPI) getAccount(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := objectPathID(r, ids.PrefixAccount)
	if err != nil {
		return err
	}
	a, roles, err := s.callerAccount(r, c, id)
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusOK, s.accountJSON(r, a, roles, id == c.AccountID()))
	return nil
}

// updateAccount renames the caller's account: account settings are for
// administrators only (docs/api-compatibility.md#roles). Another
// account is changed with an API key of that account.
func (s *userAPI) updateAccount(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body accountUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixAccount, nil, &body)
	if err != nil {
		return err
	}
	if id != c.AccountID() {
		if _, _, err := s.callerAccount(r, c, id); err != nil {
			return err
		}
		return controlplane.Forbidden("This API key acts in account %s; change account %s with an API key of that account (POST /accounts/%s/api_keys).",
			c.AccountID(), id, id)
	}
	if err := c.RequireAdmin("change the account's settings"); err != nil {
		return err
	}
	a, err := s.store.GetAccount(r.Context(), id)
	if err != nil {
		return controlplane.NotFound(err, "account", id)
	}
	if body.Name != nil {
		if a, err = s.store.RenameAccount(r.Context(), c.Actor, id, *body.Name); err != nil {
			return controlplane.NotFound(err, "account", id)
		}
	}
	controlplane.WriteJSON(w, http.StatusOK, s.accountJSON(r, a, c.Key.Roles, true))
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
func (s *userAPI) createAccountAPIKey(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body apiKeyCreateBody
	id, err := s.beginWrite(w, r, ids.PrefixAccount, nil, &body)
	if err != nil {
		return err
	}
	if err := c.RequireUser("switch accounts"); err != nil {
		return err
	}
	if body.OwnerID != "" && body.OwnerID != c.Key.OwnerID {
		return controlplane.Forbidden("An API key made in another account is always your own; leave owner_id out.")
	}
	if id == c.AccountID() {
		return controlplane.BadRequest(codes.APIInvalidParam, "This API key already acts in %s: create keys here with POST /api_keys.", id)
	}
	a, _, err := s.callerAccount(r, c, id)
	if err != nil {
		return err
	}
	if !a.Active {
		return controlplane.Errorf(http.StatusForbidden, codes.APIAccountSuspended,
			"The account %s is suspended; its API keys do not work until it is reactivated.", id)
	}
	if err := s.requireIdentityKey(r, c); err != nil {
		return err
	}
	// The unit of work is the target account's: its audit log shows the
	// key's creation by the user, with the key from the other account.
	actor := store.Actor{AccountID: id, PrincipalID: c.Key.OwnerID, CredentialID: c.Key.KeyID}
	desc := body.Description
	if desc == "" {
		desc = "created from account " + c.AccountID()
	}
	k, tok, err := s.store.CreateAPIKey(r.Context(), actor, id,
		store.APIKeyCreate{OwnerID: c.Key.OwnerID, Description: desc, Metadata: body.Metadata})
	if errors.Is(err, store.ErrOwnerNotFound) { // left the account meanwhile
		return controlplane.NotFound(store.ErrNotFound, "account", id)
	}
	if err != nil {
		return err
	}
	out := s.apiKeyJSON(r, k)
	secret := tok.Reveal()
	out.Token = &secret
	controlplane.WriteJSON(w, http.StatusCreated, out)
	return nil
}
