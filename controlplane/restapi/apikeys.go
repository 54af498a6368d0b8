package restapi

import (
	"net/http"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// apiKeyJSON is the api_keys object (docs/api-compatibility.md#api-keys).
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

// apiKeyAPI serves /api_keys.
type apiKeyAPI struct{ *Server }

// routes registers /api_keys.
func (s *apiKeyAPI) routes(mux *http.ServeMux) {
	s.route(mux, "/api_keys", methods{http.MethodGet: s.listAPIKeys, http.MethodPost: s.createAPIKey})
	s.route(mux, "/api_keys/{id}", methods{http.MethodGet: s.getAPIKey, http.MethodPatch: s.updateAPIKey, http.MethodDelete: s.deleteAPIKey})
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

// apiKeyJSON renders an API key: the api_keys resource's, and the key that
// accepting an invitation or switching accounts creates (users.go).
func (s *Server) apiKeyJSON(r *http.Request, k *store.APIKey) apiKeyJSON {
	return apiKeyJSON{ID: k.ID, URI: s.baseURL(r) + "/api_keys/" + k.ID, Description: k.Description,
		Metadata: k.Metadata, CreatedAt: timestamp(k.CreatedAt), OwnerID: k.OwnerID}
}

func (s *apiKeyAPI) createAPIKey(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body apiKeyCreateBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	owner, err := c.OwnerFor(body.OwnerID)
	if err != nil {
		return err
	}
	k, tok, err := s.store.CreateAPIKey(r.Context(), c.Actor, c.AccountID(),
		store.APIKeyCreate{OwnerID: owner, Description: body.Description, Metadata: body.Metadata})
	if err != nil {
		return err
	}
	out := s.apiKeyJSON(r, k)
	secret := tok.Reveal() // shown once, to its creator
	out.Token = &secret
	controlplane.WriteJSON(w, http.StatusCreated, out)
	return nil
}

// getAPIKey is GET /api_keys/{id}.
func (s *apiKeyAPI) getAPIKey(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return getOne(ids.PrefixAPIKey, "API key", s.store.GetAPIKey, s.apiKeyJSON)(w, r, c)
}

// listAPIKeys is GET /api_keys (items under "keys").
func (s *apiKeyAPI) listAPIKeys(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return listPage(s.Server, "keys", ids.PrefixAPIKey, s.store.ListAPIKeys, s.apiKeyJSON,
		func(v *store.APIKey) string { return v.ID })(w, r, c)
}

func (s *apiKeyAPI) updateAPIKey(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body apiKeyUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixAPIKey, nil, &body)
	if err != nil {
		return err
	}
	if err := controlplane.APIKeyAccess(s.store)(r.Context(), c, id); err != nil {
		return err
	}
	k, err := s.store.UpdateAPIKey(r.Context(), c.Actor, c.AccountID(), id, store.APIKeyUpdate{Description: body.Description, Metadata: body.Metadata})
	if err != nil {
		return controlplane.NotFound(err, "API key", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.apiKeyJSON(r, k))
	return nil
}

// deleteAPIKey is DELETE /api_keys/{id}: its owner or an administrator.
func (s *apiKeyAPI) deleteAPIKey(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixAPIKey, "API key", controlplane.APIKeyAccess(s.store), s.store.DeleteAPIKey)(w, r, c)
}
