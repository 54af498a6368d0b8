package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// signUpView is the sign-up page.
type signUpView struct {
	Email, Name, Account string
	Error                *controlplane.Error
	MinLen               int
}

// signUpOff is the answer when Config.SignUp is off.
func signUpOff() error {
	return controlplane.Errorf(http.StatusNotFound, codes.SignUpDisabled,
		"This Tollgate control plane does not allow signing up: ask an administrator of an account for an invitation. (The operator turns sign-up on with tollgated control --signup.)")
}

// signUpPage is GET /signup: the form, when Config.SignUp is on.
func (s *identityPages) signUpPage(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	v := signUpView{MinLen: authn.MinPasswordLen}
	status := http.StatusOK
	if !s.cfg.SignUp {
		v.Error = controlplane.AsError(signUpOff())
		status = v.Error.Status
	}
	s.render(w, status, "signup", v)
}

// signUp is POST /signup {email, name, account, password}: a new user with
// that password and a new account they administer (store.SignUp), then a
// password session in it. Every attempt, successful or not, charges the
// client address's sign-in budget and a sign-up budget of the address
// (a target of controlplane.Core.AdmitSignIn: 10, then one per 30
// seconds), and a spent budget refuses it before the password is hashed,
// so one address cannot create users without bound.
func (s *identityPages) signUp(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	v := signUpView{MinLen: authn.MinPasswordLen}
	fail := func(err error) {
		v.Error = controlplane.AsError(err)
		if v.Error.Status >= 500 {
			s.log.Error("dashboard sign-up failed", zap.Error(err))
		}
		s.render(w, v.Error.Status, "signup", v)
	}
	if !s.cfg.SignUp {
		fail(signUpOff())
		return
	}
	if err := s.readPublicForm(w, r); err != nil {
		fail(err)
		return
	}
	f := r.PostForm
	v.Email, v.Name, v.Account = strings.TrimSpace(f.Get("email")), strings.TrimSpace(f.Get("name")), strings.TrimSpace(f.Get("account"))
	budget := "signup " + s.core.ClientIP(r) // the address's own sign-up budget
	if err := s.core.AdmitSignIn(w, r, budget); err != nil {
		fail(err)
		return
	}
	s.core.ChargeSignInFailure(r, budget)
	if !store.ValidEmail(v.Email) {
		fail(controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "%q is not an e-mail address.", controlplane.Truncate(v.Email, 100)))
		return
	}
	if err := s.checkNewAccountEmail(r.Context(), v.Email); err != nil { // sso_gate.go
		fail(err)
		return
	}
	pw := f.Get("password")
	if err := checkNewPassword(pw, v.Email); err != nil {
		fail(err)
		return
	}
	u, a, err := s.store.SignUp(r.Context(), store.SignUp{Email: v.Email, Name: v.Name, AccountName: v.Account, PasswordHash: hashPassword(pw)})
	if err != nil {
		fail(storeInputError(err))
		return
	}
	s.log.Info("dashboard sign-up", zap.String("account_id", a.ID), zap.String("user_id", u.ID),
		zap.String("client_ip", s.core.ClientIP(r)))
	if err := s.checkDashboardRestriction(r, a.ID); err != nil {
		fail(err)
		return
	}
	if err := s.openDashboardSession(w, r, sessionStart{AccountID: a.ID, UserID: u.ID, Method: store.SignInPassword}); err != nil {
		fail(err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// checkNewPassword applies the password rules (authn.CheckPassword) to a
// new password of the user with address email, in the dashboard's words.
func checkNewPassword(password, email string) error {
	err := authn.CheckPassword(password, email)
	if err == nil {
		return nil
	}
	msg := "Your password holds control characters. Choose another."
	switch {
	case errors.Is(err, authn.ErrPasswordShort):
		msg = fmt.Sprintf("Your new password is too short: use at least %d characters. A few unrelated words make a long password that is easy to remember.", authn.MinPasswordLen)
	case errors.Is(err, authn.ErrPasswordLong):
		msg = fmt.Sprintf("Your new password is too long: use at most %d characters.", authn.MaxPasswordLen)
	case errors.Is(err, authn.ErrPasswordCommon):
		msg = "That password is one of the most common ones, which attackers try first. Choose another."
	case errors.Is(err, authn.ErrPasswordEmail):
		msg = "Your password cannot be your e-mail address. Choose another."
	}
	return controlplane.Errorf(http.StatusBadRequest, codes.PasswordPolicy, "%s", msg)
}

// storeInputError turns the store's refusals of a form's input (a
// *codes.Error, a conflict) into a 400 or 409 page error.
func storeInputError(err error) error {
	var ce *codes.Error
	var cfe *store.ConflictError
	switch {
	case errors.As(err, &cfe):
		return &controlplane.Error{Status: http.StatusConflict, Code: cfe.Code, Msg: cfe.Message, Cause: err}
	case errors.As(err, &ce):
		return &controlplane.Error{Status: http.StatusBadRequest, Code: ce.Code, Msg: ce.Message, Cause: err}
	}
	return err
}

// dashCreateAccount is POST /accounts {name}: a new account with the
// signed-in user as its administrator (store.CreateAccountFor), then a
// switch into it. A session signed in with an API key stays in its
// account: the page says how to switch.
func (s *identityPages) dashCreateAccount(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if u, err := s.store.GetUser(r.Context(), c.Key.OwnerID); err != nil {
		return err
	} else if err := s.checkNewAccountEmail(r.Context(), u.Email); err != nil { // sso_gate.go
		return err
	}
	a, err := s.store.CreateAccountFor(r.Context(), c.Actor, c.Key.OwnerID, strings.TrimSpace(r.PostForm.Get("name")))
	if err != nil {
		return storeInputError(err)
	}
	s.log.Info("account created in the dashboard", zap.String("account_id", a.ID), zap.String("user_id", c.Key.OwnerID))
	return s.switchTo(w, r, c, a.ID)
}

// dashSwitchAccount is POST /accounts/switch {account_id}: the browser's
// session moves to another account of the user (switchTo).
func (s *identityPages) dashSwitchAccount(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id := strings.TrimSpace(r.PostForm.Get("account_id"))
	if err := controlplane.CheckID(id, ids.PrefixAccount); err != nil {
		return controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "%q is not an account ID (acct_...).", controlplane.Truncate(id, 60))
	}
	return s.switchTo(w, r, c, id)
}

// switchTo opens a new session of the signed-in user in account id with
// the current session's sign-in method, replacing the current session
// (audited in both accounts: dashboard_session_deleted.v0 with reason
// "replaced" in the old one, dashboard_session_created.v0 in the new
// one). The user must be an active member of the active account, the
// account must admit the method, and its dashboard IP restriction the
// browser (admitToAccount). An API-key session cannot switch: API keys
// belong to one account.
func (s *identityPages) switchTo(w http.ResponseWriter, r *http.Request, c *dashCaller, id string) error {
	if c.sess.Method == store.SignInAPIKey {
		return controlplane.Errorf(http.StatusConflict, codes.AccountSwitch,
			"You signed in with an API key of %s, and API keys belong to one account. Sign out and sign in with your e-mail address and password to switch accounts (set a password on your profile page first).", c.AccountID())
	}
	if err := s.admitToAccount(r, id, c.Key.OwnerID, c.sess.Method); err != nil {
		return err
	}
	if err := s.openDashboardSession(w, r, sessionStart{AccountID: id, UserID: c.Key.OwnerID, Method: c.sess.Method}); err != nil {
		return err
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}
