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
	SignedIn  bool                // the browser was signed in to the account
	SignInErr *controlplane.Error // why it was not, when it was not
	// Before acceptance: Existing is set when the invited address has a
	// user; Me is the signed-in user's address, when a session is open
	// (FormToken its form token); SignInLink signs in and comes back.
	Existing   bool
	Me         string
	FormToken  string
	SignInLink string
	MinLen     int
}

// acceptPage is GET /accept?token=...: the invitation (account and
// address) and what accepting takes: for a new address the name and a
// password; for an existing user, being signed in as them (a button), or
// else a link that signs in and comes back. An invalid token charges the
// client address's failure budget.
func (s *identityPages) acceptPage(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	v := acceptView{Token: strings.TrimSpace(r.URL.Query().Get("token")), MinLen: authn.MinPasswordLen}
	if v.Token == "" {
		s.render(w, http.StatusOK, "accept", v)
		return
	}
	if err := s.previewInto(w, r, &v); err != nil {
		v.Error = controlplane.AsError(err)
		s.render(w, v.Error.Status, "accept", v)
		return
	}
	if c, err := s.dashAuthenticate(r); err == nil {
		if u, err := s.store.GetUser(r.Context(), c.Key.OwnerID); err == nil {
			v.Me, v.FormToken = u.Email, c.csrf
		}
	}
	s.render(w, http.StatusOK, "accept", v)
}

// previewInto reads the invitation of v.Token into v (account, address,
// whether it has a user), or returns the error to show: an invalid token
// charges the address's failure budget, and past it is answered 429.
func (s *identityPages) previewInto(w http.ResponseWriter, r *http.Request, v *acceptView) error {
	pv, err := s.store.PreviewInvitation(r.Context(), v.Token)
	if err != nil {
		return s.invitationError(w, r, err)
	}
	v.Email, v.Account, v.Existing = pv.Invitation.Email, pv.AccountName, pv.ExistingUser
	v.SignInLink = "/signin?next=" + url.QueryEscape("/accept?token="+url.QueryEscape(v.Token))
	return nil
}

// invitationError turns the store's refusal of an invitation token into
// the page's error; an invalid token charges the client address's failure
// budget (controlplane.Core.ChargeAuthFailure), and past it is answered
// 429.
func (s *identityPages) invitationError(w http.ResponseWriter, r *http.Request, err error) error {
	var ce *codes.Error
	if !errors.As(err, &ce) {
		return err
	}
	status := map[codes.Code]int{codes.InvitationInvalid: http.StatusNotFound, codes.InvitationExpired: http.StatusGone,
		codes.APIPrincipalInactive: http.StatusForbidden, codes.InvitationExists: http.StatusConflict}[ce.Code]
	if status == 0 {
		status = http.StatusBadRequest
	}
	if ce.Code == codes.InvitationInvalid {
		if tooMany := s.core.ChargeAuthFailure(w, r, "This address sent too many invalid invitation tokens; wait and check the link."); tooMany != nil {
			return tooMany
		}
	}
	return &controlplane.Error{Status: status, Code: ce.Code, Msg: ce.Message, Cause: err}
}

// acceptInvitationForm is POST /accept {token, name, password}: it
// accepts the invitation as the API's POST /invitations/accept does, shows
// the member's first API key in the account once, and signs the browser
// in to the account when its dashboard IP restriction allows.
//
//   - Signed in (a valid session and its form token): the signed-in user
//     joins, when the invitation is for their address; the browser
//     switches to the new account with the session's sign-in method (a
//     user belongs to every account that invited them; no second user).
//   - Not signed in, for a new address: the user is created with the name
//     and password given (the password rules of authn.CheckPassword).
//   - Not signed in, for an address that has a user: refused with the way
//     to sign in first.
//
// A wrong token charges the client address's failure budget
// (controlplane.Core.ChargeAuthFailure), and past it is answered 429; a
// valid token is never refused for it.
func (s *identityPages) acceptInvitationForm(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	v := acceptView{MinLen: authn.MinPasswordLen}
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
	if err := s.previewInto(w, r, &v); err != nil {
		fail(err)
		return
	}
	in := store.InvitationAccept{Token: v.Token, Name: v.Name, Description: "created when accepting the invitation in the dashboard"}
	c, err := s.dashAuthenticate(r)
	signedIn := err == nil && r.PostForm.Has("form_token")
	switch {
	case signedIn:
		if err := checkForm(r, c); err != nil {
			fail(err)
			return
		}
		u, err := s.store.GetUser(r.Context(), c.Key.OwnerID)
		if err != nil {
			fail(err)
			return
		}
		if u.Email != v.Email {
			fail(controlplane.Errorf(http.StatusConflict, codes.InvitationExists,
				"This invitation is for %s, and you are signed in as %s. Sign out, then open the link again as %s.", v.Email, u.Email, v.Email))
			return
		}
		in.ExistingUserID, in.Name = u.ID, ""
	case v.Existing:
		fail(controlplane.Errorf(http.StatusConflict, codes.InvitationExists,
			"%s already has a Tollgate user. Sign in (%s), then open this invitation link again to join %s; or accept it through the API: POST /invitations/accept with the token and 'Authorization: Bearer <your API key>'.",
			v.Email, v.SignInLink, v.Account))
		return
	default:
		if v.Name == "" {
			fail(controlplane.Errorf(http.StatusBadRequest, codes.APIInvalidParam, "Give your name: %s is new to this control plane.", v.Email))
			return
		}
		pw := r.PostForm.Get("password")
		if err := checkNewPassword(pw, v.Email); err != nil {
			fail(err)
			return
		}
		in.PasswordHash = hashPassword(pw)
	}
	acc, err := s.store.AcceptInvitation(r.Context(), in)
	switch {
	case errors.Is(err, store.ErrExistingUser):
		fail(controlplane.Errorf(http.StatusConflict, codes.InvitationExists,
			"This invitation is for an existing Tollgate user. Sign in, then open the invitation link again."))
		return
	case err != nil:
		fail(s.invitationError(w, r, err))
		return
	}
	v.Token, v.Email, v.Account = "", acc.Member.User.Email, acc.Account.Name
	v.APIKey, v.APIKeyID = acc.Token.Reveal(), acc.APIKey.ID // shown once, to the new member
	s.log.Info("invitation accepted in the dashboard", zap.String("account_id", acc.Account.ID),
		zap.String("user_id", acc.Member.User.ID), zap.String("client_ip", s.core.ClientIP(r)))
	method := store.SignInPassword
	if signedIn {
		method = c.sess.Method
	}
	if err := s.signInAfterAccept(w, r, acc, method); err != nil {
		v.SignInErr = controlplane.AsError(err)
	} else {
		v.SignedIn = true
	}
	s.render(w, http.StatusCreated, "accept", v)
}

// signInAfterAccept opens a dashboard session in the account just joined,
// by method (for store.SignInAPIKey with the key the acceptance created),
// when the account admits it (admitToAccount).
func (s *identityPages) signInAfterAccept(w http.ResponseWriter, r *http.Request, acc *store.Acceptance, m store.SignInMethod) error {
	if err := s.admitToAccount(r, acc.Account.ID, acc.Member.User.ID, m); err != nil {
		return err
	}
	in := sessionStart{AccountID: acc.Account.ID, UserID: acc.Member.User.ID, Method: m}
	if m == store.SignInAPIKey {
		in.APIKeyID = acc.APIKey.ID
	}
	return s.openDashboardSession(w, r, in)
}
