package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
)

// challengeCookie holds a pending sign-in's token between the password and
// the TOTP code; challengeTTL is how long the code may take.
const (
	challengeCookie = "tollgate_signin"
	challengeTTL    = 5 * time.Minute
)

// maxAccountsTried bounds how many of a user's accounts a sign-in looks at
// to find one that admits it.
const maxAccountsTried = 100

// anonymous is the actor of the audit events of failed sign-ins: nobody
// proved who they are.
var anonymous = store.Actor{PrincipalID: "anonymous"}

// dummyHash is a password hash of the current parameters that a sign-in
// for an unknown address, or a user without a password, is checked
// against, so that it costs what a real check costs and the answer's
// timing does not tell which addresses have users.
// It is made on first use (an argon2id computation).
var dummyHash = sync.OnceValue(func() string { return authn.HashPassword("tollgate: no such user") })

// signInMethodAdmitted is the one place that decides whether account
// accountID admits a dashboard sign-in by method m; every sign-in, account
// switch and acceptance calls it before opening a session in the account.
// The SSO rules (ssoMethodAdmitted, sso_gate.go): an account with SSO
// enforced refuses store.SignInPassword and store.SignInAPIKey
// (codes.SSOEnforced, naming the account's identity providers), and a
// session signed in through an identity provider does not move to another
// account (only that account's own providers sign in to it).
func (s *identityPages) signInMethodAdmitted(ctx context.Context, accountID string, m store.SignInMethod) error {
	if !m.Valid() {
		return controlplane.Errorf(http.StatusForbidden, codes.SignInMethodDenied, "The sign-in method %q is not known.", string(m))
	}
	return s.ssoMethodAdmitted(ctx, accountID, m)
}

// signInFailed is the answer to a wrong address or password: one message
// for both, so the page does not tell which addresses have users.
func signInFailed() error {
	return controlplane.Errorf(http.StatusUnauthorized, codes.PasswordSignIn,
		"The e-mail address or password is wrong. Check both, or ask an administrator of your account for a password reset link.")
}

// passwordSignIn is POST /signin {email, password, next}. In order: the
// throttle (controlplane.Core.AdmitSignIn: a throttled attempt is refused
// before any hash is computed), the user's password (argon2id, checked
// against a dummy hash for an unknown address or a user without a
// password, in the same time), the user's state, then either the TOTP
// step (a pending sign-in in a 5-minute cookie) or a new session in the
// first of the user's accounts that admits it. A failure charges the
// address and the target and is audited (recordSignInFailure).
func (s *identityPages) passwordSignIn(w http.ResponseWriter, r *http.Request, next string) error {
	email := strings.ToLower(strings.TrimSpace(r.PostForm.Get("email")))
	password := r.PostForm.Get("password")
	if email == "" || password == "" {
		return controlplane.Errorf(http.StatusBadRequest, codes.PasswordSignIn, "Give your e-mail address and your password.")
	}
	target := controlplane.Truncate(email, 254)
	if err := s.core.AdmitSignIn(w, r, target); err != nil {
		s.log.Info("dashboard sign-in throttled", zap.String("client_ip", s.core.ClientIP(r)))
		return err
	}
	pu, err := s.store.LookupPasswordUser(r.Context(), email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	hash := dummyHash()
	if pu != nil && pu.Hash != "" {
		hash = pu.Hash
	}
	ok, err := s.checkPassword(password, hash)
	if err != nil {
		return err
	}
	if !ok || pu == nil || pu.Hash == "" {
		reason := "wrong_password"
		if pu == nil {
			reason = "unknown_email"
		} else if pu.Hash == "" {
			reason = "no_password"
		}
		s.core.ChargeSignInFailure(r, target)
		s.recordSignInFailure(r, pu, email, store.SignInPassword, reason)
		return signInFailed()
	}
	if !pu.Active {
		s.recordSignInFailure(r, pu, email, store.SignInPassword, "user_inactive")
		return controlplane.Errorf(http.StatusForbidden, codes.APIPrincipalInactive,
			"The user %s is deactivated. Ask an administrator of the account to reactivate you.", pu.UserID)
	}
	if authn.NeedsRehash(pu.Hash) {
		if err := s.store.RehashPassword(r.Context(), pu.UserID, pu.Hash, authn.HashPassword(password)); err != nil {
			s.log.Warn("upgrading a password hash failed", zap.String("user_id", pu.UserID), zap.Error(err))
		}
	}
	if pu.TOTP {
		ch, tok, err := s.store.CreateSignInChallenge(r.Context(), pu.UserID, s.core.ClientIP(r), challengeTTL)
		if err != nil {
			return err
		}
		s.setCookie(w, r, challengeCookie, "/signin", tok.Reveal(), ch.ExpiresAt)
		s.render(w, http.StatusOK, "signin", signInView{Next: next, TOTP: true, Email: pu.Email, SignUp: s.cfg.SignUp})
		return nil
	}
	return s.finishPasswordSignIn(w, r, pu, next)
}

// finishPasswordSignIn is finishSignIn for a user who proved their
// password (and TOTP code): a refusal by every account (4xx: SSO enforced,
// a claimed domain, the IP restriction, no account left) is audited
// (recordSignInFailure, reason the refusal's code).
func (s *identityPages) finishPasswordSignIn(w http.ResponseWriter, r *http.Request, pu *store.PasswordUser, next string) error {
	err := s.finishSignIn(w, r, pu.UserID, store.SignInPassword, next)
	if ae := controlplane.AsError(err); err != nil && ae.Status < 500 {
		s.recordSignInFailure(r, pu, pu.Email, store.SignInPassword, string(ae.Code))
	}
	return err
}

// hashSlots bounds concurrent argon2id computations (19 MiB each), so a
// burst of sign-ins from many addresses cannot exhaust memory; the others
// wait their turn.
var hashSlots = make(chan struct{}, 4)

// hashesChecked counts password hash computations of sign-ins, for tests
// that a throttled attempt costs none.
var hashesChecked atomic.Uint64

// checkPassword compares password with hash in one of the hashSlots.
func (s *identityPages) checkPassword(password, hash string) (bool, error) {
	hashesChecked.Add(1)
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	ok, err := authn.PasswordMatches(password, hash)
	if err != nil {
		s.log.Error("a stored password hash is malformed", zap.Error(err))
		return false, nil
	}
	return ok, nil
}

// hashPassword hashes a new password in one of the hashSlots.
func hashPassword(password string) string {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	return authn.HashPassword(password)
}

// totpSignIn is POST /signin/totp {code, next}: the second step of a
// password sign-in of a user with TOTP. The pending sign-in (cookie) must
// be valid; a wrong code charges the address and the user, counts against
// the pending sign-in (store.MaxChallengeAttempts) and is audited; a code
// is accepted once (store.UseTOTPStep).
func (s *identityPages) totpSignIn(w http.ResponseWriter, r *http.Request, next string) error {
	expired := controlplane.Errorf(http.StatusUnauthorized, codes.TOTPRequired,
		"Your sign-in expired or was ended after too many wrong codes. Sign in again with your e-mail address and password.")
	ck, err := r.Cookie(challengeCookie)
	if err != nil {
		return expired
	}
	ch, err := s.store.LookupSignInChallenge(r.Context(), ck.Value)
	if errors.Is(err, store.ErrNotFound) {
		s.setCookie(w, r, challengeCookie, "/signin", "", time.Time{})
		return expired
	}
	if err != nil {
		return err
	}
	user, err := s.store.GetUser(r.Context(), ch.UserID)
	if err != nil {
		return err
	}
	target := user.Email
	if err := s.core.AdmitSignIn(w, r, target); err != nil {
		return err
	}
	wrong := func(reason string) error {
		s.core.ChargeSignInFailure(r, target)
		if err := s.store.FailSignInChallenge(r.Context(), ch.ID); err != nil {
			return err
		}
		s.recordSignInFailure(r, &store.PasswordUser{UserID: user.ID, Email: user.Email}, user.Email, store.SignInPassword, reason)
		s.render(w, http.StatusUnauthorized, "signin", signInView{Next: next, TOTP: true, Email: user.Email,
			Error: controlplane.AsError(controlplane.Errorf(http.StatusUnauthorized, codes.TOTPInvalid,
				"That code is not right, or was used already. Enter the current code of your authenticator app."))})
		return nil
	}
	o, err := s.store.GetTOTP(r.Context(), ch.UserID)
	if err != nil {
		return err
	}
	step, ok, err := authn.CheckTOTP(o.Secret, r.PostForm.Get("code"), s.cfg.Now(), o.LastStep)
	if errors.Is(err, authn.ErrTOTPReplayed) {
		return wrong("replayed_totp")
	}
	if err != nil || !ok {
		return wrong("wrong_totp")
	}
	actor := store.Actor{PrincipalID: user.ID, CredentialID: ch.ID}
	if err := s.store.UseTOTPStep(r.Context(), actor, user.ID, step, false); err != nil {
		var ce *codes.Error
		if errors.As(err, &ce) && ce.Code == codes.TOTPInvalid {
			return wrong("replayed_totp")
		}
		return err
	}
	if err := s.store.DeleteSignInChallenge(r.Context(), ch.ID); err != nil {
		return err
	}
	s.setCookie(w, r, challengeCookie, "/signin", "", time.Time{})
	return s.finishPasswordSignIn(w, r, &store.PasswordUser{UserID: user.ID, Email: user.Email}, next)
}

// finishSignIn opens a session for user userID, who proved who they are
// by method, in the first of their accounts (oldest first) that is active,
// admits the method and whose dashboard IP restriction admits the
// browser; then redirects to next. With none, the first account's reason
// is the answer.
func (s *identityPages) finishSignIn(w http.ResponseWriter, r *http.Request, userID string, m store.SignInMethod, next string) error {
	accts, err := s.store.FirstAccounts(r.Context(), userID, maxAccountsTried)
	if err != nil {
		return err
	}
	var first error
	for _, am := range accts {
		err := s.admitToAccount(r, am.Account.ID, userID, m)
		if err == nil {
			if err := s.openDashboardSession(w, r, sessionStart{AccountID: am.Account.ID, UserID: userID, Method: m}); err != nil {
				return err
			}
			http.Redirect(w, r, next, http.StatusSeeOther)
			return nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = controlplane.Errorf(http.StatusForbidden, codes.AccountSwitch,
			"Your user belongs to no account any more. Ask an administrator for an invitation%s.", s.orSignUp())
	}
	return first
}

// orSignUp completes a sentence with the sign-up, when it is on.
func (s *identityPages) orSignUp() string {
	if s.cfg.SignUp {
		return ", or create a new account at /signup"
	}
	return ""
}

// admitToAccount checks that user userID, signed in by method, may have a
// session in account accountID from this browser: a member of an active
// account, the user active, the method admitted (signInMethodAdmitted)
// and the account's dashboard IP restriction admitting the TCP peer.
func (s *identityPages) admitToAccount(r *http.Request, accountID, userID string, m store.SignInMethod) error {
	key, err := s.store.LookupMemberAuth(r.Context(), accountID, userID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !key.Member) {
		return controlplane.Errorf(http.StatusForbidden, codes.AccountSwitch,
			"You are not a member of the account %s: an administrator of it can invite you.", accountID)
	}
	if err != nil {
		return err
	}
	if err := checkKeyState(key); err != nil {
		return err
	}
	if err := s.signInMethodAdmitted(r.Context(), accountID, m); err != nil {
		return err
	}
	return s.checkDashboardRestriction(r, accountID)
}

// recordSignInFailure audits a failed sign-in as
// dashboard_sign_in_failed.v0 {email, method, reason, client_ip}: for a
// known user in the log of each of their accounts (up to
// maxAccountsTried), whose administrators watch for attacks on their
// members; for an unknown address in the control plane's own log (account
// ""), which only the operator reads, and with the address only when it
// is a well-formed e-mail address (a password typed into the address field
// is not recorded). Recording is best effort: a failure to record is
// logged and does not change the answer.
func (s *identityPages) recordSignInFailure(r *http.Request, pu *store.PasswordUser, email string, m store.SignInMethod, reason string) {
	ctx := r.Context()
	payload := map[string]any{"method": string(m), "reason": reason}
	accounts := []string{""}
	object := ""
	if pu != nil {
		payload["email"], object = pu.Email, pu.UserID
		if accts, err := s.store.FirstAccounts(ctx, pu.UserID, maxAccountsTried); err == nil && len(accts) > 0 {
			accounts = accounts[:0]
			for _, am := range accts {
				accounts = append(accounts, am.Account.ID)
			}
		}
	} else if store.ValidEmail(email) {
		payload["email"] = email
	}
	s.auditSignInFailure(r, accounts, object, payload)
}

// auditSignInFailure writes dashboard_sign_in_failed.v0 with payload
// (which already holds method and reason; client_ip is added) and object
// (the user ID, or "") by the anonymous actor into each of accounts ("" is
// the control plane's own log), and logs the refusal. Every refused
// sign-in, by password or through an identity provider
// (recordSSOFailure), is written here. Best effort: a failure to record
// is logged and does not change the answer.
func (s *identityPages) auditSignInFailure(r *http.Request, accounts []string, object string, payload map[string]any) {
	payload["client_ip"] = s.core.ClientIP(r)
	for _, acct := range accounts {
		if err := s.store.RecordEvent(r.Context(), anonymous, acct, "dashboard_sign_in_failed.v0", object, payload); err != nil {
			s.log.Warn("recording a failed sign-in failed", zap.Error(err))
		}
	}
	s.log.Info("dashboard sign-in refused", zap.Any("reason", payload["reason"]), zap.Any("method", payload["method"]),
		zap.String("user_id", object), zap.String("client_ip", s.core.ClientIP(r)))
}

// setCookie sends a dashboard cookie other than the session's: HttpOnly,
// SameSite=Strict, Secure as the session's; value "" deletes it.
func (s *identityPages) setCookie(w http.ResponseWriter, r *http.Request, name, path, value string, expires time.Time) {
	ck := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || s.cfg.SecureCookie}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.Expires = expires
		ck.MaxAge = int(time.Until(expires).Seconds())
	}
	http.SetCookie(w, ck)
}
