package controlplane

import (
	"errors"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/controlplane/store"
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
// administrators and users with the team manager role manage bot users.
func (c *caller) requireTeamManager() error {
	if c.auth.Roles.Admin || (c.auth.OwnerKind == config.PrincipalUser && c.auth.Roles.Team == store.TeamManager) {
		return nil
	}
	return forbidden("Managing bot users needs the administrator flag or the team manager role.")
}

// authenticate checks the request's API key: "Authorization: Bearer
// <KSUID>_<secret>", where ak_<KSUID> names the key
// (reference/platform-behaviour.md §1.2). The secret's hash is compared in
// constant time; the key's account must be active and its owner active and
// still a member.
func (s *Server) authenticate(r *http.Request) (*caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, newAPIError(http.StatusUnauthorized, config.CodeAPIAuthMissing,
			"The API needs an API key: send the header 'Authorization: Bearer <API key>'.")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, newAPIError(http.StatusUnauthorized, config.CodeAPIAuthParse,
			"The Authorization header could not be parsed: send 'Authorization: Bearer <API key>'.")
	}
	tok = strings.TrimSpace(tok)
	if _, _, err := config.SplitID(tok, config.PrefixAPIKey); err == nil {
		return nil, newAPIError(http.StatusUnauthorized, config.CodeAPIKeyID,
			"You sent an API key's ID (ak_...), not the API key itself. Send the token that was shown when the key was created, or create a new key.")
	}
	kid, secret, err := authn.ParseToken(tok)
	if err != nil {
		return nil, newAPIError(http.StatusUnauthorized, config.CodeAPIAuthMalformed,
			"The API key is malformed: it has the form <27 characters>_<secret>. Copy it again exactly as it was shown.")
	}
	key, err := s.store.LookupAPIKey(r.Context(), config.PrefixAPIKey+"_"+kid)
	if errors.Is(err, store.ErrNotFound) {
		if isAuthtoken, aerr := s.store.AuthtokenExists(r.Context(), config.PrefixAuthtoken+"_"+kid); aerr != nil {
			return nil, aerr
		} else if isAuthtoken {
			return nil, newAPIError(http.StatusUnauthorized, config.CodeAPIAuthtoken,
				"You sent an authtoken, which agents use. The API needs an API key: create one with POST /api_keys or in the dashboard.")
		}
		return nil, newAPIError(http.StatusUnauthorized, config.CodeAPIAuthInvalid,
			"The API key is not valid: it may have been deleted or mistyped.")
	}
	if err != nil {
		return nil, err
	}
	if !authn.SecretMatches(secret, key.SecretHash) {
		return nil, newAPIError(http.StatusUnauthorized, config.CodeAPIAuthInvalid,
			"The API key is not valid: it may have been deleted or mistyped.")
	}
	if !key.AccountActive {
		return nil, newAPIError(http.StatusForbidden, config.CodeAPIAccountSuspended,
			"The account %s is suspended; its API keys do not work until it is reactivated.", key.AccountID)
	}
	if !key.OwnerActive {
		return nil, newAPIError(http.StatusForbidden, config.CodeAPIPrincipalInactive,
			"The API key's owner %s is deactivated. Ask an administrator to reactivate it, or use another key.", key.OwnerID)
	}
	if !key.Member {
		return nil, forbidden("The API key's owner %s is no longer a member of account %s.", key.OwnerID, key.AccountID)
	}
	return &caller{auth: key, actor: store.Actor{AccountID: key.AccountID, PrincipalID: key.OwnerID, CredentialID: key.KeyID}}, nil
}
