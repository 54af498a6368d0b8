package controlplane

import (
	"net/http"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// apiKeyJSON is the api_keys object (reference/platform-behaviour.md §1.6).
// Token is set only in the create response; null otherwise.
type apiKeyJSON struct {
	ID          string  `json:"id"`
	URI         string  `json:"uri"`
	Description string  `json:"description"`
	Metadata    string  `json:"metadata"`
	CreatedAt   string  `json:"created_at"`
	Token       *string `json:"token"`
	OwnerID     string  `json:"owner_id"`
}

type apiKeyCreateBody struct {
	Description string `json:"description"`
	Metadata    string `json:"metadata"`
	OwnerID     string `json:"owner_id"` // default: the caller
}

type apiKeyUpdateBody struct {
	Description *string `json:"description"`
	Metadata    *string `json:"metadata"`
}

func (s *Server) apiKeyJSON(r *http.Request, k *store.APIKey) apiKeyJSON {
	return apiKeyJSON{ID: k.ID, URI: s.baseURL(r) + "/api_keys/" + k.ID, Description: k.Description,
		Metadata: k.Metadata, CreatedAt: timestamp(k.CreatedAt), OwnerID: k.OwnerID}
}

// apiKeyAccess lets an API key's owner and administrators change or delete
// it (ownerAccess).
func (s *Server) apiKeyAccess() accessCheck {
	return ownerAccess("API key", s.store.GetAPIKey, func(k *store.APIKey) string { return k.OwnerID })
}

// ownerFor returns the owner of a credential the caller creates: the caller
// by default; someone else only for administrators.
func ownerFor(c *caller, ownerID string) (string, error) {
	if err := c.requireWrite(); err != nil {
		return "", err
	}
	if ownerID == "" || ownerID == c.auth.OwnerID {
		return c.auth.OwnerID, nil
	}
	if err := checkID(ownerID, ids.PrefixUser, ids.PrefixBotUser); err != nil {
		return "", err
	}
	if !c.isAdmin() {
		return "", forbidden("Only administrators may create a credential owned by someone else; leave owner_id out to own it yourself.")
	}
	return ownerID, nil
}

func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body apiKeyCreateBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	owner, err := ownerFor(c, body.OwnerID)
	if err != nil {
		return err
	}
	k, tok, err := s.store.CreateAPIKey(r.Context(), c.actor, c.accountID(),
		store.APIKeyCreate{OwnerID: owner, Description: body.Description, Metadata: body.Metadata})
	if err != nil {
		return err
	}
	out := s.apiKeyJSON(r, k)
	secret := tok.Reveal() // shown once, to its creator
	out.Token = &secret
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// getAPIKey is GET /api_keys/{id}.
func (s *Server) getAPIKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	return getOne(ids.PrefixAPIKey, "API key", s.store.GetAPIKey, s.apiKeyJSON)(w, r, c)
}

// listAPIKeys is GET /api_keys (items under "keys").
func (s *Server) listAPIKeys(w http.ResponseWriter, r *http.Request, c *caller) error {
	return listPage(s, "keys", ids.PrefixAPIKey, s.store.ListAPIKeys, s.apiKeyJSON,
		func(v *store.APIKey) string { return v.ID })(w, r, c)
}

func (s *Server) updateAPIKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body apiKeyUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixAPIKey, nil, &body)
	if err != nil {
		return err
	}
	if err := s.apiKeyAccess()(r.Context(), c, id); err != nil {
		return err
	}
	k, err := s.store.UpdateAPIKey(r.Context(), c.actor, c.accountID(), id, store.APIKeyUpdate{Description: body.Description, Metadata: body.Metadata})
	if err != nil {
		return notFound(err, "API key", id)
	}
	writeJSON(w, http.StatusOK, s.apiKeyJSON(r, k))
	return nil
}

// deleteAPIKey is DELETE /api_keys/{id}: its owner or an administrator.
func (s *Server) deleteAPIKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	return deleteOne(ids.PrefixAPIKey, "API key", s.apiKeyAccess(), s.store.DeleteAPIKey)(w, r, c)
}
