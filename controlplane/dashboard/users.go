package dashboard

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/tollgate/tollgate/controlplane/store"
)

// usersView is the users page: the account's members, its pending
// invitations, and, right after an invitation was made, its link (shown
// once: it carries the accept token).
type usersView struct {
	Members     []store.Member
	Invitations []store.Invitation
	More        bool
	CanInvite   bool
	CanManage   bool   // team managers and administrators: change roles, remove members
	Admin       bool   // administrators also change administrators' roles
	Self        string // the signed-in user: they may leave
	InviteLink  string
	InviteEmail string
	// Admin also shows the password reset buttons; ResetLink and
	// ResetEmail are set once, right after a reset link was issued.
	ResetLink  string
	ResetEmail string
}

func (s *Server) usersView(r *http.Request, c *dashCaller) (*usersView, error) {
	members, more1, err := s.store.ListMembers(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return nil, err
	}
	invs, more2, err := s.store.ListInvitations(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return nil, err
	}
	return &usersView{Members: members, Invitations: invs, More: more1 || more2, CanInvite: c.CanInvite(),
		CanManage: c.IsTeamManager() && !c.IsBot(), Admin: c.IsAdmin(), Self: c.Key.OwnerID}, nil
}

// dashInvite is POST /users/invite {email, developer, team, billing,
// admin}: an invitation as POST /invitations makes it (same roles rules),
// answered with the page and the accept link to send the invitee, shown
// once. Tollgate sends no e-mail.
func (s *Server) dashInvite(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	identity := &identityPages{s}
	f := r.PostForm
	inv, tok, err := s.core.Invite(r.Context(), &c.Caller, store.InvitationCreate{Email: strings.TrimSpace(f.Get("email")),
		Developer: store.DeveloperRole(f.Get("developer")), Team: store.TeamRole(f.Get("team")),
		Billing: f.Get("billing") == "on", Admin: f.Get("admin") == "on"})
	return afterAction(s, w, r, c, "users", "Users", s.usersView, err, func(v *usersView) {
		v.InviteEmail = inv.Email
		v.InviteLink = identity.linkTo(r, "/accept?token="+url.QueryEscape(tok.Reveal())) // shown once, to the inviter
	})
}
