package controlplane

import (
	"net/http"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// credentialJSON is the credentials (authtoken) object
// (reference/platform-behaviour.md §1.7). Token is set only in the create
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

func (s *Server) credentialJSON(r *http.Request, a *store.Authtoken) credentialJSON {
	acl := a.ACL
	if acl == nil {
		acl = []string{}
	}
	return credentialJSON{ID: a.ID, URI: s.baseURL(r) + "/credentials/" + a.ID, CreatedAt: timestamp(a.CreatedAt),
		Description: a.Description, Metadata: a.Metadata, ACL: acl, OwnerID: a.OwnerID}
}

// authtokenAccess lets an authtoken's owner and administrators change or
// delete it (ownerAccess).
func (s *Server) authtokenAccess() accessCheck {
	return ownerAccess("credential", s.store.GetAuthtoken, func(a *store.Authtoken) string { return a.OwnerID })
}

func (s *Server) createCredential(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body credentialCreateBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	owner, err := ownerFor(c, body.OwnerID)
	if err != nil {
		return err
	}
	a, tok, err := s.store.CreateAuthtoken(r.Context(), c.actor, c.accountID(), store.AuthtokenCreate{
		OwnerID: owner, Description: body.Description, Metadata: body.Metadata, ACL: body.ACL})
	if err != nil {
		return err
	}
	out := s.credentialJSON(r, a)
	secret := tok.Reveal() // shown once, to its creator
	out.Token = &secret
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// getCredential is GET /credentials/{id}.
func (s *Server) getCredential(w http.ResponseWriter, r *http.Request, c *caller) error {
	return getOne(ids.PrefixAuthtoken, "credential", s.store.GetAuthtoken, s.credentialJSON)(w, r, c)
}

// listCredentials is GET /credentials.
func (s *Server) listCredentials(w http.ResponseWriter, r *http.Request, c *caller) error {
	return listPage(s, "credentials", ids.PrefixAuthtoken, s.store.ListAuthtokens, s.credentialJSON,
		func(v *store.Authtoken) string { return v.ID })(w, r, c)
}

func (s *Server) updateCredential(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body credentialUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixAuthtoken, nil, &body)
	if err != nil {
		return err
	}
	if err := s.authtokenAccess()(r.Context(), c, id); err != nil {
		return err
	}
	a, err := s.store.UpdateAuthtoken(r.Context(), c.actor, c.accountID(), id,
		store.AuthtokenUpdate{Description: body.Description, Metadata: body.Metadata, ACL: body.ACL})
	if err != nil {
		return notFound(err, "credential", id)
	}
	writeJSON(w, http.StatusOK, s.credentialJSON(r, a))
	return nil
}

// deleteCredential is DELETE /credentials/{id}: its owner or an
// administrator.
func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request, c *caller) error {
	return deleteOne(ids.PrefixAuthtoken, "credential", s.authtokenAccess(), s.store.DeleteAuthtoken)(w, r, c)
}
