package dashboard

import (
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// botsView is the bot users page. NewToken is set once, right after a bot
// user was created with its authtoken.
type botsView struct {
	Bots       []store.BotUser
	More       bool
	CanCreate  bool // administrators: a bot user with a credential it owns
	CanManage  bool // team managers and administrators: activate, deactivate
	NewBot     string
	NewToken   string
	NewTokenID string
}

func (s *Server) botsView(r *http.Request, c *dashCaller) (*botsView, error) {
	bots, more, err := s.store.ListBotUsers(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return nil, err
	}
	return &botsView{Bots: bots, More: more, CanCreate: c.IsAdmin(), CanManage: c.IsTeamManager()}, nil
}

// dashCreateBot is POST /bot-users {name, acl}: a bot user and an
// authtoken it owns, in one unit of work, the token shown once — a machine
// identity for CI or a server. Administrators only: creating the bot needs
// the team manager role, giving it a credential the administrator flag
// (as with the API's owner_id).
func (s *Server) dashCreateBot(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := c.RequireAdmin("create bot users with credentials in the dashboard"); err != nil {
		return dashForbidden(err)
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if name == "" {
		return controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "Give the bot user a name, so that you can tell it apart (ci, backup-server...).")
	}
	b, a, tok, err := s.store.CreateBotUserWithAuthtoken(r.Context(), c.Actor, c.AccountID(),
		store.BotUserCreate{Name: name, Active: true},
		store.AuthtokenCreate{Description: "created with bot user " + name + " in the dashboard", ACL: splitACL(r.PostForm.Get("acl"))})
	return afterAction(s, w, r, c, "bot-users", "Bot users", s.botsView, err, func(v *botsView) {
		v.NewBot, v.NewToken, v.NewTokenID = b.ID, tok.Reveal(), a.ID // shown once, to its creator
	})
}

// dashSetBotActive is POST /bot-users/{id}/active {active: "true" |
// "false"}: deactivating stops the bot's API keys and closes its agents'
// sessions at every edge (as PATCH /bot_users/{id}); team managers and
// administrators.
func (s *Server) dashSetBotActive(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id := r.PathValue("id")
	if err := controlplane.CheckID(id, ids.PrefixBotUser); err != nil {
		return controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "%q is not a bot user ID (bot_...).", controlplane.Truncate(id, 60))
	}
	var active bool
	switch r.PostForm.Get("active") {
	case "true":
		active = true
	case "false":
	default:
		return controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "active must be true or false.")
	}
	if err := c.RequireTeamManager(); err != nil {
		return dashForbidden(err)
	}
	if _, err := s.store.UpdateBotUser(r.Context(), c.Actor, c.AccountID(), id, store.BotUserUpdate{Active: &active}); err != nil {
		return controlplane.NotFound(err, "bot user", id)
	}
	http.Redirect(w, r, "/bot-users", http.StatusSeeOther)
	return nil
}

// splitACL splits a form's bind rules, separated by commas or new lines.
func splitACL(s string) []string {
	var acl []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			acl = append(acl, f)
		}
	}
	return acl
}
