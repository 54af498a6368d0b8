package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// resetView is the password reset page of a reset link.
type resetView struct {
	Token  string
	Email  string
	Error  *controlplane.Error
	MinLen int
}

// dashPasswordReset is POST /users/{id}/password-reset: an administrator
// issues a one-time link that sets a new password for a member
// (store.CreatePasswordReset: valid one hour, single use, earlier links
// revoked, refused for a user who belongs to accounts the administrator
// does not administer). The users page shows the link once; Tollgate
// sends no e-mail, the administrator passes it on.
func (s *identityPages) dashPasswordReset(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := c.RequireAdmin("issue password reset links"); err != nil {
		return dashForbidden(err)
	}
	id := r.PathValue("id")
	if err := controlplane.CheckID(id, ids.PrefixUser); err != nil {
		return controlplane.Errorf(http.StatusBadRequest, codes.BotUserAccount,
			"%q is not a user ID (usr_...): only users have passwords; bot users never sign in.", controlplane.Truncate(id, 60))
	}
	pr, tok, err := s.store.CreatePasswordReset(r.Context(), c.Actor, c.AccountID(), id)
	if errors.Is(err, store.ErrNotFound) {
		return controlplane.NotFound(err, "user", id)
	}
	var ce *codes.Error
	if errors.As(err, &ce) {
		// Not a role refusal (afterAction would say so): the error page.
		return &controlplane.Error{Status: http.StatusForbidden, Code: ce.Code, Msg: ce.Message, Cause: err}
	}
	return afterAction(s.Server, w, r, c, "users", "Users", s.usersView, err, func(v *usersView) {
		v.ResetEmail = pr.Email
		v.ResetLink = s.linkTo(r, "/reset?token="+url.QueryEscape(tok.Reveal())) // shown once, to the administrator
	})
}

// linkTo returns the absolute URL of path on this dashboard.
func (s *identityPages) linkTo(r *http.Request, path string) string {
	scheme := "http"
	if r.TLS != nil || s.cfg.SecureCookie {
		scheme = "https"
	}
	return scheme + "://" + r.Host + path
}

// resetPage is GET /reset?token=...: the form of a new password, when the
// link is valid. An invalid link charges the client address's failure
// budget, as a wrong invitation token does.
func (s *identityPages) resetPage(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	v := resetView{Token: strings.TrimSpace(r.URL.Query().Get("token")), MinLen: authn.MinPasswordLen}
	pr, err := s.store.LookupPasswordReset(r.Context(), v.Token)
	if err != nil {
		s.resetFailed(w, r, v, err)
		return
	}
	v.Email = pr.Email
	s.render(w, http.StatusOK, "reset", v)
}

// resetPassword is POST /reset {token, password}: sets the new password
// through the link (store.UsePasswordReset: single use, every session of
// the user ends) and sends the browser to the sign-in page.
func (s *identityPages) resetPassword(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	v := resetView{MinLen: authn.MinPasswordLen}
	if err := s.readPublicForm(w, r); err != nil {
		s.resetFailed(w, r, v, err)
		return
	}
	v.Token = strings.TrimSpace(r.PostForm.Get("token"))
	pr, err := s.store.LookupPasswordReset(r.Context(), v.Token)
	if err != nil {
		s.resetFailed(w, r, v, err)
		return
	}
	v.Email = pr.Email
	pw := r.PostForm.Get("password")
	if err := checkNewPassword(pw, pr.Email); err != nil {
		s.resetFailed(w, r, v, err)
		return
	}
	if _, err := s.store.UsePasswordReset(r.Context(), v.Token, hashPassword(pw)); err != nil {
		s.resetFailed(w, r, v, err)
		return
	}
	s.log.Info("password reset through a link", zap.String("user_id", pr.UserID), zap.String("password_reset_id", pr.ID),
		zap.String("client_ip", s.core.ClientIP(r)))
	http.Redirect(w, r, "/signin?reset=1", http.StatusSeeOther)
}

// resetFailed renders the reset page with err; an invalid link charges the
// address's failure budget, and past it the answer is 429.
func (s *identityPages) resetFailed(w http.ResponseWriter, r *http.Request, v resetView, err error) {
	var ce *codes.Error
	if errors.As(err, &ce) && ce.Code == codes.ResetInvalid {
		v.Token, v.Email = "", ""
		err = &controlplane.Error{Status: http.StatusNotFound, Code: ce.Code, Msg: ce.Message, Cause: err}
		if tooMany := s.core.ChargeAuthFailure(w, r, "This address sent too many invalid reset links; wait and check the link."); tooMany != nil {
			err = tooMany
		}
	}
	v.Error = controlplane.AsError(err)
	if v.Error.Status >= 500 {
		s.log.Error("password reset failed", zap.Error(err))
	}
	s.render(w, v.Error.Status, "reset", v)
}
