package dashboard

import (
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
)

// acceptView is the invitation page: the form, or after acceptance the new
// member's first API key (shown once).
type acceptView struct {
	Token     string // the accept token, when the link carried it
	Name      string
	Error     *controlplane.Error
	Email     string
	Account   string
	APIKey    string // set once accepted
	APIKeyID  string
	SignedIn  bool                // the browser was signed in with the new key
	SignInErr *controlplane.Error // why it was not, when it was not
}

// acceptPage is GET /accept?token=...: the form a new user fills in to
// accept an invitation (the link an administrator sends them).
func (s *Server) acceptPage(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	s.render(w, http.StatusOK, "accept", acceptView{Token: strings.TrimSpace(r.URL.Query().Get("token"))})
}

// acceptInvitationForm is POST /accept {token, name}: it accepts the
// invitation as the API's POST /invitations/accept does for a new user,
// shows the new member's first API key once, and signs the browser in with
// it when the account's dashboard IP restriction allows. An invitation for
// an existing user must be accepted through the API with one of that
// user's keys, which proves who they are. A wrong token charges the
// client address's failure budget (controlplane.Core.ChargeAuthFailure),
// and past it is answered 429; a valid token is never refused for it.
func (s *Server) acceptInvitationForm(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	v := acceptView{}
	fail := func(err error) {
		v.Error = controlplane.AsError(err)
		if v.Error.Status >= 500 {
			s.log.Error("accepting an invitation in the dashboard failed", zap.Error(err))
		}
		s.render(w, v.Error.Status, "accept", v)
	}
	if err := s.readPublicForm(w, r); err != nil {
		fail(err)
		return
	}
	v.Token, v.Name = strings.TrimSpace(r.PostForm.Get("token")), strings.TrimSpace(r.PostForm.Get("name"))
	acc, err := s.store.AcceptInvitation(r.Context(), store.InvitationAccept{Token: v.Token, Name: v.Name, Description: "created when accepting the invitation in the dashboard"})
	var ce *codes.Error
	switch {
	case errors.Is(err, store.ErrExistingUser):
		fail(controlplane.Errorf(http.StatusConflict, codes.InvitationExists,
			"This invitation is for an existing Tollgate user. Accept it with one of your API keys: POST /invitations/accept with the token and 'Authorization: Bearer <your API key>'."))
		return
	case errors.As(err, &ce):
		status := map[codes.Code]int{codes.InvitationInvalid: http.StatusNotFound, codes.InvitationExpired: http.StatusGone,
			codes.APIPrincipalInactive: http.StatusForbidden, codes.InvitationExists: http.StatusConflict}[ce.Code]
		if status == 0 {
			status = http.StatusBadRequest
		}
		if ce.Code == codes.InvitationInvalid {
			if tooMany := s.core.ChargeAuthFailure(w, r, "This address sent too many invalid invitation tokens; wait and check the link."); tooMany != nil {
				fail(tooMany)
				return
			}
		}
		fail(&controlplane.Error{Status: status, Code: ce.Code, Msg: ce.Message, Cause: err})
		return
	case err != nil:
		fail(err)
		return
	}
	v.Token, v.Email, v.Account = "", acc.Member.User.Email, acc.Account.Name
	v.APIKey, v.APIKeyID = acc.Token.Reveal(), acc.APIKey.ID // shown once, to the new member
	s.log.Info("invitation accepted in the dashboard", zap.String("account_id", acc.Account.ID),
		zap.String("user_id", acc.Member.User.ID), zap.String("client_ip", s.core.ClientIP(r)))
	if err := s.signInAfterAccept(w, r, acc); err != nil {
		v.SignInErr = controlplane.AsError(err)
	} else {
		v.SignedIn = true
	}
	s.render(w, http.StatusCreated, "accept", v)
}

// signInAfterAccept opens a dashboard session with the key the invitation
// just created, when the account's dashboard IP restriction allows.
func (s *Server) signInAfterAccept(w http.ResponseWriter, r *http.Request, acc *store.Acceptance) error {
	if err := s.checkDashboardRestriction(r, acc.Account.ID); err != nil {
		return err
	}
	return s.openDashboardSession(w, r, sessionStart{AccountID: acc.Account.ID, UserID: acc.Member.User.ID,
		Method: store.SignInAPIKey, APIKeyID: acc.APIKey.ID})
}
