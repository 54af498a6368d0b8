package dashboard

import (
	"net/http"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// botView is one bot user's page: the credentials it owns. NewAPIKey is
// set once, right after an API key was created for it.
type botView struct {
	Bot         *store.BotUser
	Authtokens  []store.Authtoken
	APIKeys     []store.APIKey
	SSHKeys     []store.SSHCredential
	More        bool // the account holds more than a page of some credential
	CanCreate   bool // administrators: credentials owned by someone else (Caller.OwnerFor)
	NewAPIKey   string
	NewAPIKeyID string
}

// botView builds GET /bot-users/{id}.
func (s *managePages) botView(r *http.Request, c *dashCaller) (*botView, error) {
	id, err := formID(r, "a bot user (bot_...)", ids.PrefixBotUser)
	if err != nil {
		return nil, err
	}
	bot, err := s.store.GetBotUser(r.Context(), c.AccountID(), id)
	if err != nil {
		return nil, controlplane.NotFound(err, "bot user", id)
	}
	creds, err := s.credentialsView(r, c)
	if err != nil {
		return nil, err
	}
	v := &botView{Bot: bot, More: creds.More, CanCreate: c.IsAdmin() && c.CanWrite()}
	v.Authtokens = ownedBy(creds.Authtokens, id, func(a store.Authtoken) string { return a.OwnerID })
	v.APIKeys = ownedBy(creds.APIKeys, id, func(k store.APIKey) string { return k.OwnerID })
	v.SSHKeys = ownedBy(creds.SSHCredentials, id, func(k store.SSHCredential) string { return k.OwnerID })
	return v, nil
}

// ownedBy keeps the credentials of owner.
func ownedBy[T any](list []T, owner string, ownerOf func(T) string) []T {
	var out []T
	for _, v := range list {
		if ownerOf(v) == owner {
			out = append(out, v)
		}
	}
	return out
}

// dashCreateBotAPIKey is POST /bot-users/{id}/api-keys {description}: an
// API key owned by the bot user, for its programs to call the API, shown
// once. Administrators only (Caller.OwnerFor, as POST /api_keys with
// owner_id).
func (s *managePages) dashCreateBotAPIKey(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := formID(r, "a bot user (bot_...)", ids.PrefixBotUser)
	if err != nil {
		return err
	}
	owner, err := c.OwnerFor(id)
	if err != nil {
		return dashForbidden(err)
	}
	k, tok, err := s.store.CreateAPIKey(r.Context(), c.Actor, c.AccountID(), store.APIKeyCreate{OwnerID: owner, Description: formText(r, "description")})
	return afterAction(s.Server, w, r, c, "bot-user", "Bot user", s.botView, err, func(v *botView) {
		v.NewAPIKey, v.NewAPIKeyID = tok.Reveal(), k.ID // shown once, to its creator
	})
}

// dashAddBotSSHKey is POST /bot-users/{id}/ssh-keys {public_key,
// description, acl}: an SSH key owned by the bot user (administrators
// only, controlplane.Core.CreateSSHCredential).
func (s *managePages) dashAddBotSSHKey(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := formID(r, "a bot user (bot_...)", ids.PrefixBotUser)
	if err != nil {
		return err
	}
	k, err := s.core.CreateSSHCredential(r.Context(), &c.Caller, sshKeyForm(r, id))
	return redirectAfter(s.Server, w, r, c, "bot-user", "Bot user", s.botView, err,
		"/bot-users/"+id, "ssh-key-added", idOf(k, err, func(k *store.SSHCredential) string { return k.ID }))
}
