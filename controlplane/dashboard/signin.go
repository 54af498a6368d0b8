package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/snapshot"
)

// CookieName names the session cookie. Its value is the session token
// "<KSUID>_<secret>"; the store keeps only the secret's hash.
const CookieName = "tollgate_session"

// dashCaller is a signed-in dashboard user: the API key they signed in with
// (its owner's current roles) and the session.
type dashCaller struct {
	controlplane.Caller
	sess   *store.DashboardSession
	secret string // the session secret, from the cookie: the form token derives from it
	csrf   string
}

// dashHandler renders one page for a signed-in user.
type dashHandler func(w http.ResponseWriter, r *http.Request, c *dashCaller) error

// dashServe wraps a page that needs a signed-in user: it authenticates the
// session cookie (signed out → redirect to /signin), applies the account's
// dashboard IP restriction, checks the form token of a POST, and renders
// the error page for an error the page returns.
func (s *Server) dashServe(h dashHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		dashHeaders(w)
		c, err := s.dashAuthenticate(r)
		var ae *controlplane.Error
		if errors.As(err, &ae) && ae.Code == codes.DashboardSignedOut {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
				return
			}
		}
		if err == nil && r.Method == http.MethodPost {
			err = checkForm(r, c)
		}
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			s.renderError(w, r, c, err)
		}
	}
}

// dashAuthenticate turns the session cookie into the signed-in user: the
// session must exist, match its secret in constant time and be unexpired;
// the API key it was opened with must still be valid, its account active
// and its owner active and a member; and the account's dashboard IP
// restriction must admit the TCP peer.
func (s *Server) dashAuthenticate(r *http.Request) (*dashCaller, error) {
	signedOut := func(why string) error {
		return controlplane.Errorf(http.StatusUnauthorized, codes.DashboardSignedOut, "%s Sign in again with your API key.", why)
	}
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return nil, signedOut("You are not signed in.")
	}
	kid, secret, err := authn.ParseToken(ck.Value)
	if err != nil {
		return nil, signedOut("Your session cookie is malformed.")
	}
	sess, err := s.store.LookupDashboardSession(r.Context(), ids.PrefixDashboardSession+"_"+kid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, signedOut("Your session has ended: it expired or you signed out.")
	}
	if err != nil {
		return nil, err
	}
	if !authn.SecretMatches(secret, sess.SecretHash) {
		return nil, signedOut("Your session cookie is not valid.")
	}
	key, err := s.sessionAuth(r, sess)
	if err != nil {
		return nil, err
	}
	if err := checkKeyState(key); err != nil {
		return nil, err
	}
	caller := controlplane.NewCaller(key)
	if sess.APIKeyID == "" {
		// Signed in without a key: the session itself is the credential
		// that the audit log names.
		caller.Actor.CredentialID = sess.ID
	}
	c := &dashCaller{
		Caller: *caller,
		sess:   sess, secret: secret, csrf: formToken(secret),
	}
	if err := s.checkDashboardRestriction(r, key.AccountID); err != nil {
		return nil, err
	}
	return c, nil
}

// sessionAuth returns what a session acts as: the API key it was signed in
// with (its owner's current state and roles), or, for a session signed in
// with a password or an identity provider, the user's current state and
// roles in the session's account (store.LookupMemberAuth).
func (s *Server) sessionAuth(r *http.Request, sess *store.DashboardSession) (*store.APIKeyAuth, error) {
	if sess.APIKeyID == "" {
		key, err := s.store.LookupMemberAuth(r.Context(), sess.AccountID, sess.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, controlplane.Errorf(http.StatusUnauthorized, codes.DashboardSignedOut,
				"Your user or the account %s no longer exists. Sign in again.", sess.AccountID)
		}
		return key, err
	}
	key, err := s.store.LookupAPIKey(r.Context(), sess.APIKeyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, controlplane.Errorf(http.StatusUnauthorized, codes.DashboardSignedOut,
			"The API key you signed in with (%s) was deleted, which ends its dashboard sessions. Sign in again.", sess.APIKeyID)
	}
	return key, err
}

// checkKeyState refuses an API key whose account is suspended, or whose
// owner is deactivated or no longer a member (authn.CheckOwnerState): the
// same answers the API gives, in the dashboard's words. The key's secret
// was checked at sign-in; the session's own secret stands for it since.
func checkKeyState(key *store.APIKeyAuth) error {
	switch err := authn.CheckOwnerState(key.AccountActive, key.OwnerActive, key.Member); {
	case errors.Is(err, authn.ErrAccountInactive):
		return controlplane.Errorf(http.StatusForbidden, codes.APIAccountSuspended,
			"The account %s is suspended; nobody can sign in to it until it is reactivated.", key.AccountID)
	case errors.Is(err, authn.ErrOwnerInactive):
		return controlplane.Errorf(http.StatusForbidden, codes.APIPrincipalInactive,
			"The user %s is deactivated. Ask an administrator of the account to reactivate you.", key.OwnerID)
	case errors.Is(err, authn.ErrNotMember):
		return controlplane.Forbidden("The user %s is no longer a member of account %s.", key.OwnerID, key.AccountID)
	}
	return nil
}

// checkDashboardRestriction applies the account's `dashboard` IP
// restrictions to the browser's TCP peer address (restrictionDecision):
// refused → 403 with codes.DashboardIPRestricted.
func (s *Server) checkDashboardRestriction(r *http.Request, accountID string) error {
	d, err := s.core.Restriction(r, accountID, policy.SurfaceDashboard)
	if err != nil || d.Allowed {
		return err
	}
	s.log.Info("dashboard request refused by an IP restriction", zap.String("account_id", accountID),
		zap.String("ip_restriction_id", d.RestrictionID), zap.String("client_ip", s.core.ClientIP(r)))
	return controlplane.Errorf(http.StatusForbidden, codes.DashboardIPRestricted,
		"The IP restriction %s of account %s does not allow the dashboard from %s. Connect from an allowed network, or ask an administrator to change the restriction's IP policies (with the API from an allowed address).",
		d.RestrictionID, accountID, s.core.ClientIP(r))
}

// formToken is the anti-forgery token of a session's forms: a hash of the
// session secret, so a page of another origin, which cannot read the
// cookie, cannot produce it.
func formToken(secret string) string {
	sum := sha256.Sum256([]byte("tollgate dashboard form token\x00" + secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// checkForm refuses a POST that comes from another origin (Origin or
// Sec-Fetch-Site), or, when c is set, whose form lacks the session's form
// token.
func checkForm(r *http.Request, c *dashCaller) error {
	forgery := func(why string) error {
		return controlplane.Errorf(http.StatusForbidden, codes.DashboardForgery,
			"%s Reload the page and submit the form again.", why)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return forgery("This form was submitted from another site.")
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return forgery("This form was submitted from another origin (" + controlplane.Truncate(o, 100) + ").")
		}
	}
	if c == nil {
		return nil
	}
	if err := r.ParseForm(); err != nil {
		return controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "The form could not be read: %v.", err)
	}
	got := r.PostForm.Get("form_token")
	if subtle.ConstantTimeCompare([]byte(got), []byte(c.csrf)) != 1 {
		return forgery("The form's token is missing or belongs to another session.")
	}
	return nil
}

// setSessionCookie sends the session cookie: HttpOnly, SameSite=Strict,
// Secure on a TLS connection or with Config.SecureCookie,
// for the session's lifetime.
func (s *Server) setSessionCookie(w http.ResponseWriter, r *http.Request, value string, expires time.Time) {
	identity := &identityPages{s}
	identity.setCookie(w, r, CookieName, "/", value, expires)
}

// signInPage is GET /signin: the form, or the overview for a user already
// signed in.
func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	if _, err := s.dashAuthenticate(r); err == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	v := signInView{Next: safeNext(r.URL.Query().Get("next")), SignUp: s.cfg.SignUp}
	if r.URL.Query().Get("reset") == "1" {
		v.Notice = "Your password was changed and your sessions ended. Sign in with the new password."
	}
	s.render(w, http.StatusOK, "signin", v)
}

// signIn is POST /signin: with {email, password, next} a password sign-in
// (passwordSignIn), with {code, next} its TOTP step (totpSignIn), and with
// {api_key, next} the operator fallback of an API key. A wrong key is
// charged to the client address's failure budget (the API's: guessing
// keys here is no faster than against the API), and past it answered
// 429; a valid key signs in whatever others sent from the address.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	identity := &identityPages{s}
	dashHeaders(w)
	next := "/"
	fail := func(err error) {
		ae := controlplane.AsError(err)
		if ae.Status >= 500 {
			s.log.Error("dashboard sign-in failed", zap.Error(err))
		}
		v := signInView{Next: next, Error: ae, SignUp: s.cfg.SignUp}
		if r.PostForm.Has("email") {
			v.Email = controlplane.Truncate(strings.TrimSpace(r.PostForm.Get("email")), 254)
		}
		s.render(w, ae.Status, "signin", v)
	}
	if err := s.readPublicForm(w, r); err != nil {
		fail(err)
		return
	}
	next = safeNext(r.PostForm.Get("next"))
	var err error
	switch {
	case r.PostForm.Has("code"):
		err = identity.totpSignIn(w, r, next)
	case r.PostForm.Has("email"):
		err = identity.passwordSignIn(w, r, next)
	default:
		s.apiKeySignIn(w, r, next)
		return
	}
	if err != nil {
		fail(err)
	}
}

// apiKeySignIn is the API-key sign-in of POST /signin {api_key, next}.
func (s *Server) apiKeySignIn(w http.ResponseWriter, r *http.Request, next string) {
	identity := &identityPages{s}
	fail := func(err error) {
		ae := controlplane.AsError(err)
		if ae.Status == http.StatusUnauthorized {
			// The key was checked and is wrong: charge the address; past its
			// budget, answer 429 instead.
			if tooMany := s.core.ChargeAuthFailure(w, r, "This address failed to sign in too many times; wait and check the API key."); tooMany != nil {
				ae = controlplane.AsError(tooMany)
			}
		}
		if ae.Status >= 500 {
			s.log.Error("dashboard sign-in failed", zap.Error(err))
		} else {
			s.log.Info("dashboard sign-in refused", zap.String("error_code", string(ae.Code)),
				zap.String("client_ip", s.core.ClientIP(r)))
		}
		if ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden {
			// Audited; a throttled attempt (429) is only counted
			// (controlplane.Core.AuthThrottled), so a flood writes nothing.
			identity.recordSignInFailure(r, nil, "", store.SignInAPIKey, string(ae.Code))
		}
		s.render(w, ae.Status, "signin", signInView{Next: next, Error: ae, SignUp: s.cfg.SignUp})
	}
	key, err := s.signInKey(r, strings.TrimSpace(r.PostForm.Get("api_key")))
	if err != nil {
		fail(err)
		return
	}
	if err := identity.signInMethodAdmitted(r.Context(), key.AccountID, store.SignInAPIKey); err != nil {
		fail(err)
		return
	}
	if err := s.checkDashboardRestriction(r, key.AccountID); err != nil {
		fail(err)
		return
	}
	if err := s.openDashboardSession(w, r, sessionStart{AccountID: key.AccountID, UserID: key.OwnerID,
		Method: store.SignInAPIKey, APIKeyID: key.KeyID}); err != nil {
		fail(err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// sessionStart is who a new dashboard session signs in, and how.
type sessionStart struct {
	AccountID, UserID string
	Method            store.SignInMethod
	// APIKeyID is the key signed in with, for store.SignInAPIKey only.
	APIKeyID string
	// IdPAccountID is the account of the identity provider that signed
	// the user in, for store.SignInSAML and store.SignInOIDC only: such a
	// session opens only in that account (checkSignInMethod).
	IdPAccountID string
}

// openDashboardSession signs the browser in: a new session in the store
// (audited, with a new token: a session is never reused across sign-ins)
// and its cookie, replacing any cookie the browser had.
//
// The session the browser held, if its cookie is valid, ends in the same
// unit of work (store.DashboardSessionCreate.Replaces): sessions rotate at
// every sign-in and account switch, so a session token planted in the
// browser before sign-in is worth nothing after it.
//
// A method other than SSO is refused when the account enforces SSO or the
// user's email domain is claimed (checkSignInMethod, sso_gate.go).
func (s *Server) openDashboardSession(w http.ResponseWriter, r *http.Request, in sessionStart) error {
	// Single sign-on policy: an enforced account, or a claimed email
	// domain, admits only its identity providers (sso_gate.go).
	if err := s.checkSignInMethod(r.Context(), in); err != nil {
		return err
	}
	actor := store.Actor{AccountID: in.AccountID, PrincipalID: in.UserID, CredentialID: in.APIKeyID}
	sess, tok, err := s.store.CreateDashboardSession(r.Context(), actor, store.DashboardSessionCreate{
		AccountID: in.AccountID, UserID: in.UserID, Method: in.Method, APIKeyID: in.APIKeyID,
		ClientIP: s.core.ClientIP(r), TTL: s.cfg.SessionTTL, Replaces: s.currentSessionID(r)})
	if err != nil {
		return err
	}
	s.log.Info("dashboard sign-in", zap.String("account_id", in.AccountID), zap.String("user_id", in.UserID),
		zap.String("method", string(in.Method)), zap.String("api_key_id", in.APIKeyID),
		zap.String("client_ip", s.core.ClientIP(r)))
	s.setSessionCookie(w, r, tok.Reveal(), sess.ExpiresAt)
	return nil
}

// currentSessionID returns the ID of the session the request's cookie
// names when the cookie's secret matches it, else "".
func (s *Server) currentSessionID(r *http.Request) string {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return ""
	}
	kid, secret, err := authn.ParseToken(ck.Value)
	if err != nil {
		return ""
	}
	sess, err := s.store.LookupDashboardSession(r.Context(), ids.PrefixDashboardSession+"_"+kid)
	if err != nil || !authn.SecretMatches(secret, sess.SecretHash) {
		return ""
	}
	return sess.ID
}

// readPublicForm reads the form of a page that needs no session (sign-in,
// invitation acceptance): refused from another origin, at most 16 KiB. It
// does not look at the address's failure budget: the credential in the
// form is checked first, and only a wrong one is charged or refused
// (controlplane.Core.ChargeAuthFailure).
func (s *Server) readPublicForm(w http.ResponseWriter, r *http.Request) error {
	if err := checkForm(r, nil); err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		return controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "The form could not be read: %v.", err)
	}
	return nil
}

// signInKey authenticates the API key pasted into the sign-in form: a
// user's (not a bot user's) valid key of an active account.
func (s *Server) signInKey(r *http.Request, tok string) (*store.APIKeyAuth, error) {
	invalid := func(format string, args ...any) error {
		return controlplane.Errorf(http.StatusUnauthorized, codes.DashboardSignIn, format, args...)
	}
	if tok == "" {
		return nil, invalid("Paste one of your API keys to sign in.")
	}
	keyID, secret, err := authn.ParseAPIKey(tok)
	if errors.Is(err, authn.ErrAPIKeyID) {
		return nil, invalid("That is an API key's ID (ak_...), not the key itself. Paste the token that was shown when the key was created, or create a new key.")
	}
	if err != nil {
		return nil, invalid("That API key is malformed: it has the form <27 characters>_<secret>. Copy it again exactly as it was shown.")
	}
	key, err := s.store.LookupAPIKey(r.Context(), keyID)
	if errors.Is(err, store.ErrNotFound) {
		_, kid, _ := ids.Split(keyID, ids.PrefixAPIKey)
		if isAuthtoken, aerr := s.store.AuthtokenExists(r.Context(), ids.PrefixAuthtoken+"_"+kid); aerr != nil {
			return nil, aerr
		} else if isAuthtoken {
			return nil, invalid("That is an authtoken, which agents use. Sign in with one of your API keys.")
		}
		return nil, invalid("That API key is not valid: it may have been deleted or mistyped.")
	}
	if err != nil {
		return nil, err
	}
	if !authn.SecretMatches(secret, key.SecretHash) {
		return nil, invalid("That API key is not valid: it may have been deleted or mistyped.")
	}
	if key.OwnerKind != snapshot.PrincipalUser {
		return nil, controlplane.Errorf(http.StatusForbidden, codes.DashboardBotUser,
			"That API key belongs to the bot user %s. Bot users hold credentials for machines and cannot sign in to the dashboard; sign in with a key of your own user.", key.OwnerID)
	}
	if err := checkKeyState(key); err != nil {
		return nil, err
	}
	return key, nil
}

// signOut is POST /signout: it ends the session and clears the cookie.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := s.store.DeleteDashboardSession(r.Context(), c.Actor, c.sess.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s.setSessionCookie(w, r, "", time.Time{})
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
	return nil
}

// maxNext bounds the length of a post-sign-in redirect target, in bytes.
const maxNext = 2048

// safeNext keeps a post-sign-in redirect on this site: it returns next when
// it is a path of this origin, else "/". Browsers parse Location by the
// WHATWG URL Standard (§4.4, basic URL parser), which strips leading and
// trailing C0 controls and spaces, removes every TAB, LF and CR anywhere,
// and reads "\" as "/" in http(s) URLs — so "/<TAB>/evil.example",
// "/\evil.example" and " //evil.example" all become the scheme-relative
// "//evil.example", another site. Rather than enumerate what browsers
// rewrite, next must be plain: only the characters RFC 3986 allows
// unencoded in a path and query (no controls, spaces, backslashes or
// non-ASCII; no fragment), beginning with exactly one "/"; and its path,
// once percent-decoded (as this server's router decodes it), must begin
// with exactly one "/" and hold no control character or backslash, so no
// "%2F%2F", "%5C" or "%09" smuggles the same forms through a later hop.
func safeNext(next string) string {
	if len(next) < 1 || len(next) > maxNext || next[0] != '/' || (len(next) > 1 && (next[1] == '/' || next[1] == '\\')) {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if !nextChar(next[i]) {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	p := u.Path // percent-decoded
	if strings.HasPrefix(p, "//") || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' || r > 0x7e }) {
		return "/"
	}
	return next
}

// nextChar reports whether c may appear unencoded in a redirect target:
// RFC 3986 unreserved, sub-delims, ":", "@", "/", "?" and "%" (of a
// percent-encoding, which url.Parse checks).
func nextChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/?%", c) >= 0
}
