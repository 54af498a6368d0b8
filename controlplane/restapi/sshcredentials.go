package restapi

import (
	"net/http"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// sshCredentialJSON is the ssh_credentials object
// (docs/api-compatibility.md#ssh-credentials): the public key as registered, its
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

// sshCredentialAPI serves /ssh_credentials.
type sshCredentialAPI struct{ *Server }

// routes registers /ssh_credentials.
func (s *sshCredentialAPI) routes(mux *http.ServeMux) {
	s.route(mux, "/ssh_credentials", methods{http.MethodGet: s.listSSHCredentials, http.MethodPost: s.createSSHCredential})
	s.route(mux, "/ssh_credentials/{id}", methods{http.MethodGet: s.getSSHCredential,
		http.MethodPatch: s.updateSSHCredential, http.MethodDelete: s.deleteSSHCredential})
}

func (s *sshCredentialAPI) sshCredentialJSON(r *http.Request, c *store.SSHCredential) sshCredentialJSON {
	acl := c.ACL
	if acl == nil {
		acl = []string{}
	}
	return sshCredentialJSON{ID: c.ID, URI: s.baseURL(r) + "/ssh_credentials/" + c.ID, CreatedAt: timestamp(c.CreatedAt),
		Description: c.Description, Metadata: c.Metadata, PublicKey: c.PublicKey, Fingerprint: c.Fingerprint,
		ACL: acl, OwnerID: c.OwnerID}
}

func (s *sshCredentialAPI) createSSHCredential(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body sshCredentialCreateBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	cred, err := s.core.CreateSSHCredential(r.Context(), c, store.SSHCredentialCreate{
		OwnerID: body.OwnerID, Description: body.Description, Metadata: body.Metadata, PublicKey: body.PublicKey, ACL: body.ACL})
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusCreated, s.sshCredentialJSON(r, cred))
	return nil
}

// getSSHCredential is GET /ssh_credentials/{id}.
func (s *sshCredentialAPI) getSSHCredential(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return getOne(ids.PrefixSSHCredential, "SSH credential", s.store.GetSSHCredential, s.sshCredentialJSON)(w, r, c)
}

// listSSHCredentials is GET /ssh_credentials.
func (s *sshCredentialAPI) listSSHCredentials(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return listPage(s.Server, "ssh_credentials", ids.PrefixSSHCredential, s.store.ListSSHCredentials, s.sshCredentialJSON,
		func(v *store.SSHCredential) string { return v.ID })(w, r, c)
}

func (s *sshCredentialAPI) updateSSHCredential(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body sshCredentialUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixSSHCredential, nil, &body)
	if err != nil {
		return err
	}
	if err := controlplane.SSHCredentialAccess(s.store)(r.Context(), c, id); err != nil {
		return err
	}
	cred, err := s.store.UpdateSSHCredential(r.Context(), c.Actor, c.AccountID(), id,
		store.SSHCredentialUpdate{Description: body.Description, Metadata: body.Metadata, ACL: body.ACL})
	if err != nil {
		return controlplane.NotFound(err, "SSH credential", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.sshCredentialJSON(r, cred))
	return nil
}

// deleteSSHCredential is DELETE /ssh_credentials/{id}: its owner or an
// administrator.
func (s *sshCredentialAPI) deleteSSHCredential(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixSSHCredential, "SSH credential", controlplane.SSHCredentialAccess(s.store), s.store.DeleteSSHCredential)(w, r, c)
}
