package controlplane

import (
	"errors"
	"net/http"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// sshCredentialJSON is the ssh_credentials object
// (reference/platform-behaviour.md §1.8): the public key as registered, its
// SHA256 fingerprint (as ssh-keygen -l prints it), and the bind ACL.
type sshCredentialJSON struct {
	ID          string   `json:"id"`
	URI         string   `json:"uri"`
	CreatedAt   string   `json:"created_at"`
	Description string   `json:"description"`
	Metadata    string   `json:"metadata"`
	PublicKey   string   `json:"public_key"`
	Fingerprint string   `json:"fingerprint"`
	ACL         []string `json:"acl"`
	OwnerID     string   `json:"owner_id"`
}

type sshCredentialCreateBody struct {
	Description string   `json:"description"`
	Metadata    string   `json:"metadata"`
	PublicKey   string   `json:"public_key"`
	ACL         []string `json:"acl"`
	OwnerID     string   `json:"owner_id"` // default: the caller
}

// sshCredentialUpdateBody has no public_key: a key never changes, so a
// credential's fingerprint stays what the edges index it by.
type sshCredentialUpdateBody struct {
	Description *string   `json:"description"`
	Metadata    *string   `json:"metadata"`
	ACL         *[]string `json:"acl"`
}

// sshCredentialRoutes registers /ssh_credentials.
func (s *Server) sshCredentialRoutes(mux *http.ServeMux) {
	s.route(mux, "/ssh_credentials", methods{http.MethodGet: s.listSSHCredentials, http.MethodPost: s.createSSHCredential})
	s.route(mux, "/ssh_credentials/{id}", methods{http.MethodGet: s.getSSHCredential,
		http.MethodPatch: s.updateSSHCredential, http.MethodDelete: s.deleteSSHCredential})
}

func (s *Server) sshCredentialJSON(r *http.Request, c *store.SSHCredential) sshCredentialJSON {
	acl := c.ACL
	if acl == nil {
		acl = []string{}
	}
	return sshCredentialJSON{ID: c.ID, URI: s.baseURL(r) + "/ssh_credentials/" + c.ID, CreatedAt: timestamp(c.CreatedAt),
		Description: c.Description, Metadata: c.Metadata, PublicKey: c.PublicKey, Fingerprint: c.Fingerprint,
		ACL: acl, OwnerID: c.OwnerID}
}

// sshCredentialAccess lets an SSH credential's owner and administrators
// change or delete it (ownerAccess).
func (s *Server) sshCredentialAccess() accessCheck {
	return ownerAccess("SSH credential", s.store.GetSSHCredential, func(c *store.SSHCredential) string { return c.OwnerID })
}

func (s *Server) createSSHCredential(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body sshCredentialCreateBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	owner, err := ownerFor(c, body.OwnerID)
	if err != nil {
		return err
	}
	cred, err := s.store.CreateSSHCredential(r.Context(), c.actor, c.accountID(), store.SSHCredentialCreate{
		OwnerID: owner, Description: body.Description, Metadata: body.Metadata, PublicKey: body.PublicKey, ACL: body.ACL})
	if errors.Is(err, store.ErrConflict) {
		// Edges find an SSH credential by its key's fingerprint, so a key
		// is registered once, in one account. Say no more than that: which
		// account holds it is not the caller's business.
		return &apiError{status: http.StatusConflict, code: codes.SSHKeyRegistered,
			msg: "This SSH public key is registered already. Use another key, or delete the credential that holds it.", cause: err}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.sshCredentialJSON(r, cred))
	return nil
}

// getSSHCredential is GET /ssh_credentials/{id}.
func (s *Server) getSSHCredential(w http.ResponseWriter, r *http.Request, c *caller) error {
	return getOne(ids.PrefixSSHCredential, "SSH credential", s.store.GetSSHCredential, s.sshCredentialJSON)(w, r, c)
}

// listSSHCredentials is GET /ssh_credentials.
func (s *Server) listSSHCredentials(w http.ResponseWriter, r *http.Request, c *caller) error {
	return listPage(s, "ssh_credentials", ids.PrefixSSHCredential, s.store.ListSSHCredentials, s.sshCredentialJSON,
		func(v *store.SSHCredential) string { return v.ID })(w, r, c)
}

func (s *Server) updateSSHCredential(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body sshCredentialUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixSSHCredential, nil, &body)
	if err != nil {
		return err
	}
	if err := s.sshCredentialAccess()(r.Context(), c, id); err != nil {
		return err
	}
	cred, err := s.store.UpdateSSHCredential(r.Context(), c.actor, c.accountID(), id,
		store.SSHCredentialUpdate{Description: body.Description, Metadata: body.Metadata, ACL: body.ACL})
	if err != nil {
		return notFound(err, "SSH credential", id)
	}
	writeJSON(w, http.StatusOK, s.sshCredentialJSON(r, cred))
	return nil
}

// deleteSSHCredential is DELETE /ssh_credentials/{id}: its owner or an
// administrator.
func (s *Server) deleteSSHCredential(w http.ResponseWriter, r *http.Request, c *caller) error {
	return deleteOne(ids.PrefixSSHCredential, "SSH credential", s.sshCredentialAccess(), s.store.DeleteSSHCredential)(w, r, c)
}
