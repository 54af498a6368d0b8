package restapi

import (
	"net/http"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// credentialJSON is the credentials (authtoken) object
// (docs/api-compatibility.md#credentials). Token is set only in the create
// response; null otherwise.
type credentialJSON struct {
	ID          string   `json:"id"`
	URI         string   `json:"uri"`
	CreatedAt   string   `json:"created_at"`
	Description string   `json:"description"`
	Metadata    string   `json:"metadata"`
	Token       *string  `json:"token"`
	ACL         []string `json:"acl"`
	OwnerID     string   `json:"owner_id"`
}

// credentialAPI serves /credentials: authtokens.
type credentialAPI struct{ *Server }

// routes registers /credentials.
func (s *credentialAPI) routes(mux *http.ServeMux) {
	s.route(mux, "/credentials", methods{http.MethodGet: s.listCredentials, http.MethodPost: s.createCredential})
	s.route(mux, "/credentials/{id}", methods{http.MethodGet: s.getCredential, http.MethodPatch: s.updateCredential, http.MethodDelete: s.deleteCredential})
}

type credentialCreateBody struct {
	Description string   `json:"description"`
	Metadata    string   `json:"metadata"`
	ACL         []string `json:"acl"`
	OwnerID     string   `json:"owner_id"`
}

type credentialUpdateBody struct {
	Description *string   `json:"description"`
	Metadata    *string   `json:"metadata"`
	ACL         *[]string `json:"acl"`
}

func (s *credentialAPI) credentialJSON(r *http.Request, a *store.Authtoken) credentialJSON {
	acl := a.ACL
	if acl == nil {
		acl = []string{}
	}
	return credentialJSON{ID: a.ID, URI: s.baseURL(r) + "/credentials/" + a.ID, CreatedAt: timestamp(a.CreatedAt),
		Description: a.Description, Metadata: a.Metadata, ACL: acl, OwnerID: a.OwnerID}
}

func (s *credentialAPI) createCredential(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body credentialCreateBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	owner, err := c.OwnerFor(body.OwnerID)
	if err != nil {
		return err
	}
	a, tok, err := s.store.CreateAuthtoken(r.Context(), c.Actor, c.AccountID(), store.AuthtokenCreate{
		OwnerID: owner, Description: body.Description, Metadata: body.Metadata, ACL: body.ACL})
	if err != nil {
		return err
	}
	out := s.credentialJSON(r, a)
	secret := tok.Reveal() // shown once, to its creator
	out.Token = &secret
	controlplane.WriteJSON(w, http.StatusCreated, out)
	return nil
}

// getCredential is GET /credentials/{id}.
func (s *credentialAPI) getCredential(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return getOne(ids.PrefixAuthtoken, "credential", s.store.GetAuthtoken, s.credentialJSON)(w, r, c)
}

// listCredentials is GET /credentials.
func (s *credentialAPI) listCredentials(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return listPage(s.Server, "credentials", ids.PrefixAuthtoken, s.store.ListAuthtokens, s.credentialJSON,
		func(v *store.Authtoken) string { return v.ID })(w, r, c)
}

func (s *credentialAPI) updateCredential(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body credentialUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixAuthtoken, nil, &body)
	if err != nil {
		return err
	}
	if err := controlplane.AuthtokenAccess(s.store)(r.Context(), c, id); err != nil {
		return err
	}
	a, err := s.store.UpdateAuthtoken(r.Context(), c.Actor, c.AccountID(), id,
		store.AuthtokenUpdate{Description: body.Description, Metadata: body.Metadata, ACL: body.ACL})
	if err != nil {
		return controlplane.NotFound(err, "credential", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.credentialJSON(r, a))
	return nil
}

// deleteCredential is DELETE /credentials/{id}: its owner or an
// administrator.
func (s *credentialAPI) deleteCredential(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixAuthtoken, "credential", controlplane.AuthtokenAccess(s.store), s.store.DeleteAuthtoken)(w, r, c)
}
