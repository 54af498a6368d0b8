package dashboard

import (
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// dashAddSSHKey is POST /credentials/ssh-keys {public_key, description,
// acl}: an SSH public key owned by the signed-in user, through
// controlplane.Core.CreateSSHCredential as POST /ssh_credentials (read/write
// roles; a key registered already is codes.SSHKeyRegistered).
func (s *managePages) dashAddSSHKey(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	k, err := s.core.CreateSSHCredential(r.Context(), &c.Caller, sshKeyForm(r, ""))
	return redirectAfter(s.Server, w, r, c, "credentials", "Credentials", s.credentialsView, dashForbidden(err),
		"/credentials", "ssh-key-added", idOf(k, err, func(k *store.SSHCredential) string { return k.ID }))
}

// sshKeyForm reads an SSH key form for owner ("" for the caller).
func sshKeyForm(r *http.Request, owner string) store.SSHCredentialCreate {
	return store.SSHCredentialCreate{OwnerID: owner, PublicKey: formText(r, "public_key"),
		Description: formText(r, "description"), ACL: splitACL(r.PostForm.Get("acl"))}
}

// backTo is where a delete form returns: its back field when it is the
// credentials page or a bot user's page, else the credentials page.
func backTo(r *http.Request) string {
	back := r.PostForm.Get("back")
	if bot, ok := strings.CutPrefix(back, "/bot-users/"); ok && controlplane.CheckID(bot, ids.PrefixBotUser) == nil {
		return back
	}
	return "/credentials"
}
