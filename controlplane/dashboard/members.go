package dashboard

import (
	"net/http"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// The users page's member actions: changing a member's roles and removing
// a member (or leaving), through controlplane.Core.UpdateMemberRoles and
// RemoveMember, the functions PATCH and DELETE /users/{id} use: team
// managers and administrators; only administrators touch an administrator
// or the flag; the account keeps an active administrator (codes.LastAdmin).

// usersDone renders the users page again after a refused action, or
// redirects after a successful one.
func (s *managePages) usersDone(w http.ResponseWriter, r *http.Request, c *dashCaller, err error, key, id string) error {
	return redirectAfter(s.Server, w, r, c, "users", "Users", s.usersView, err, "/users", key, id)
}

// dashUpdateMember is POST /users/{id}/roles {developer, team, billing,
// admin ("on" when checked)}: the member's roles, all four set.
func (s *managePages) dashUpdateMember(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := formID(r, "a user (usr_...)", ids.PrefixUser)
	if err != nil {
		return err
	}
	dev, team := store.DeveloperRole(formText(r, "developer")), store.TeamRole(formText(r, "team"))
	billing, admin := r.PostForm.Get("billing") == "on", r.PostForm.Get("admin") == "on"
	_, err = s.core.UpdateMemberRoles(r.Context(), &c.Caller, id,
		store.MemberUpdate{Developer: &dev, Team: &team, Billing: &billing, Admin: &admin})
	return s.usersDone(w, r, c, err, "member-updated", id)
}

// dashRemoveMember is POST /users/{id}/remove: the member leaves the
// account with the credentials they own in it. Removing oneself ends one's
// own session: the answer is then the sign-in page.
func (s *managePages) dashRemoveMember(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := formID(r, "a user (usr_...)", ids.PrefixUser)
	if err != nil {
		return err
	}
	err = s.core.RemoveMember(r.Context(), &c.Caller, id)
	if err == nil && id == c.Key.OwnerID {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return nil
	}
	return s.usersDone(w, r, c, err, "member-removed", id)
}
