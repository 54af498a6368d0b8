package dashboard

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/sso"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// ssoCookie is the cookie that binds an SSO sign-in in progress to the
// browser that started it: the SAML request ID, or the OIDC state, nonce
// and PKCE verifier. It lives ten minutes, on /sso/ only.
const ssoCookie = "tollgate_sso"

// ssoFlowTTL is how long a started SSO sign-in may take.
const ssoFlowTTL = 10 * time.Minute

// maxSAMLPost bounds the ACS's form body, in bytes.
const maxSAMLPost = 512 << 10

// ssoFlow is the content of ssoCookie.
type ssoFlow struct {
	IdP       string `json:"idp"`
	RequestID string `json:"req,omitempty"` // SAML AuthnRequest ID
	State     string `json:"state,omitempty"`
	Nonce     string `json:"nonce,omitempty"`
	Verifier  string `json:"verifier,omitempty"`
	Next      string `json:"next"`
}

// ssoRoutes registers the SSO sign-in endpoints and the administrators'
// SSO page.
func (s *ssoPages) ssoRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /signin/sso", s.ssoEmail)
	mux.HandleFunc("GET /sso/start/{idp}", s.ssoStart)
	mux.HandleFunc("GET /sso/saml/{idp}/metadata", s.samlMetadata)
	// The ACS takes a cross-site POST from the IdP by design: it is the one
	// form endpoint without the cross-origin check (checkForm); the signed
	// response and the request binding stand for it.
	mux.HandleFunc("POST /sso/saml/{idp}/acs", s.samlACS)
	mux.HandleFunc("GET /sso/oidc/{idp}/callback", s.oidcCallback)
	s.ssoAdminRoutes(mux) // sso_admin.go
}

// baseURL is the dashboard's public URL: Config.PublicURL, or the scheme
// and Host of the request.
func (s *ssoPages) baseURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil || s.cfg.SecureCookie {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// setFlowCookie binds flow to the browser. A SAML response arrives as a
// cross-site POST, which carries only SameSite=None cookies, and those
// must be Secure: over HTTPS the cookie is SameSite=None; over plain HTTP
// (a local dashboard, where the IdP is usually same-site) it is Lax.
func (s *ssoPages) setFlowCookie(w http.ResponseWriter, r *http.Request, flow *ssoFlow, saml bool) {
	secure := r.TLS != nil || s.cfg.SecureCookie
	ck := &http.Cookie{Name: ssoCookie, Path: "/sso/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}
	if flow == nil {
		ck.MaxAge = -1
	} else {
		b, _ := json.Marshal(flow)
		ck.Value = base64.RawURLEncoding.EncodeToString(b)
		ck.MaxAge = int(ssoFlowTTL / time.Second)
		if saml && secure {
			ck.SameSite = http.SameSiteNoneMode
		}
	}
	http.SetCookie(w, ck)
}

// flowOf returns the browser's SSO sign-in in progress for identity
// provider idpID, or nil.
func flowOf(r *http.Request, idpID string) *ssoFlow {
	ck, err := r.Cookie(ssoCookie)
	if err != nil || len(ck.Value) > 4096 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return nil
	}
	var f ssoFlow
	if json.Unmarshal(b, &f) != nil || f.IdP != idpID {
		return nil
	}
	return &f
}

// ssoFail renders the sign-in page with err (a refusal the user can act
// on, or a 5xx whose cause goes to the log). A refused response or
// callback (401), and an address no provider signs in (which would
// otherwise let an address be probed for free), are charged to the client
// address's failure budget, as wrong API keys are; past it the answer is
// 429.
func (s *ssoPages) ssoFail(w http.ResponseWriter, r *http.Request, next string, err error) {
	ae := controlplane.AsError(err)
	if ae.Status == http.StatusUnauthorized || ae.Code == codes.SSONoProvider {
		if tooMany := s.core.ChargeAuthFailure(w, r, "This address failed single sign-on too many times; wait, then sign in again from the sign-in page."); tooMany != nil {
			ae = controlplane.AsError(tooMany)
		}
	}
	if ae.Status >= 500 {
		s.log.Error("SSO sign-in failed", zap.String("path", r.URL.Path), zap.Error(err))
	} else {
		s.log.Info("SSO sign-in refused", zap.String("error_code", string(ae.Code)), zap.String("path", r.URL.Path),
			zap.String("client_ip", s.core.ClientIP(r)), zap.NamedError("cause", ae.Cause))
	}
	s.render(w, ae.Status, "signin", signInView{Next: next, Error: ae})
}

// lookupIdP returns the identity provider the path names, or a 404.
func (s *ssoPages) lookupIdP(r *http.Request) (*store.IdentityProvider, error) {
	id := r.PathValue("idp")
	if controlplane.CheckID(id, ids.PrefixIdentityProvider) == nil {
		idp, err := s.store.LookupIdentityProvider(r.Context(), id)
		if err == nil {
			return idp, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	return nil, controlplane.Errorf(http.StatusNotFound, codes.SSONoProvider,
		"There is no identity provider %s: it may have been removed. Start again from the sign-in page.", controlplane.Truncate(id, 60))
}

// ssoChoices returns the identity providers that may sign email in: those
// of the account that verified the address's domain; else those of the
// accounts the user is a member of.
func (s *ssoPages) ssoChoices(r *http.Request, email string) ([]store.IdentityProvider, error) {
	ctx := r.Context()
	claim, err := s.store.DomainClaim(ctx, email)
	if err == nil {
		return s.store.AccountIdentityProviders(ctx, claim.AccountID)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	u, err := s.store.UserByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	accounts, err := s.store.UserAccountIDs(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	return s.store.AccountIdentityProviders(ctx, accounts...)
}

// ssoChooseView is the chooser shown when several identity providers
// apply.
type ssoChooseView struct {
	Email     string
	Next      string
	Providers []ssoChoice
	Auto      string // the one provider's start URL, followed at once
}

type ssoChoice struct {
	ID, Name, Kind, Account, URL string
}

// ssoEmail is POST /signin/sso {email, next}: it sends the browser on to
// the identity provider for the address (a page that refreshes to it at
// once), or shows a chooser when several apply.
func (s *ssoPages) ssoEmail(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	if err := s.readPublicForm(w, r); err != nil {
		s.ssoFail(w, r, "/", err)
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	email := strings.TrimSpace(r.PostForm.Get("email"))
	idps, err := s.ssoChoices(r, email)
	if err != nil {
		s.ssoFail(w, r, next, err)
		return
	}
	start := func(id string) string { return "/sso/start/" + id + "?next=" + url.QueryEscape(next) }
	switch len(idps) {
	case 0:
		s.ssoFail(w, r, next, controlplane.Errorf(http.StatusNotFound, codes.SSONoProvider,
			"No identity provider signs in %s. Sign in with your password or API key, or use the sign-in link your administrator shares.", controlplane.Truncate(email, 100)))
	default:
		// A page, not a redirect: the sign-in page's CSP (form-action
		// 'self') covers the redirects that follow its form, and the IdP
		// is another origin. One provider: the page moves on by itself.
		v := ssoChooseView{Email: email, Next: next}
		if len(idps) == 1 {
			v.Auto = start(idps[0].ID)
		}
		for _, p := range idps {
			acct := p.AccountID
			if a, err := s.store.GetAccount(r.Context(), p.AccountID); err == nil {
				acct = a.Name
			}
			v.Providers = append(v.Providers, ssoChoice{ID: p.ID, Name: p.Name, Kind: strings.ToUpper(string(p.Kind)), Account: acct, URL: start(p.ID)})
		}
		s.render(w, http.StatusOK, "sso-choose", v)
	}
}

// ssoStart is GET /sso/start/{idp}?next=: it starts an SP-initiated
// sign-in with the identity provider, bound to this browser by ssoCookie.
func (s *ssoPages) ssoStart(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	next := safeNext(r.URL.Query().Get("next"))
	idp, err := s.lookupIdP(r)
	if err != nil {
		s.ssoFail(w, r, next, err)
		return
	}
	flow := &ssoFlow{IdP: idp.ID, Next: next}
	var to string
	switch idp.Kind {
	case store.IdPSAML:
		to, flow.RequestID, err = s.sso.SAMLRequest(r.Context(), idp, s.baseURL(r))
	case store.IdPOIDC:
		var f *sso.OIDCFlow
		if f, err = s.sso.OIDCStart(r.Context(), idp, s.baseURL(r)); err == nil {
			to, flow.State, flow.Nonce, flow.Verifier = f.URL, f.State, f.Nonce, f.Verifier
		}
	}
	if err != nil {
		s.ssoFail(w, r, next, err)
		return
	}
	s.setFlowCookie(w, r, flow, idp.Kind == store.IdPSAML)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// samlMetadata is GET /sso/saml/{idp}/metadata: the service provider's
// metadata (its entity ID is this URL) for the IdP's administrator.
func (s *ssoPages) samlMetadata(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	idp, err := s.lookupIdP(r)
	var md []byte
	if err == nil {
		md, err = s.sso.SAMLMetadata(r.Context(), idp, s.baseURL(r))
	}
	if err != nil {
		s.renderError(w, r, nil, err)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(md)
}

// samlACS is POST /sso/saml/{idp}/acs, the assertion consumer service:
// the IdP's signed response, checked by sso.Manager.SAMLResponse against
// the request this browser started (ssoCookie), or unsolicited when the
// IdP allows IdP-initiated sign-in.
func (s *ssoPages) samlACS(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	r.Body = http.MaxBytesReader(w, r.Body, maxSAMLPost)
	idp, err := s.lookupIdP(r)
	if err != nil {
		s.ssoFail(w, r, "/", err)
		return
	}
	attempt := ssoAttempt{idp: idp, method: store.SignInSAML, reason: "protocol", next: "/"}
	if err := r.ParseForm(); err != nil {
		s.ssoRefused(w, r, attempt, controlplane.Errorf(http.StatusBadRequest, codes.SSOResponseInvalid, "The SAML response could not be read: %v.", err))
		return
	}
	var reqIDs []string
	if f := flowOf(r, idp.ID); f != nil && f.RequestID != "" {
		attempt.next, reqIDs = safeNext(f.Next), []string{f.RequestID}
	}
	next := attempt.next
	s.setFlowCookie(w, r, nil, true) // a request is answered once
	ident, err := s.sso.SAMLResponse(r.Context(), idp, s.baseURL(r), r, reqIDs)
	if err != nil {
		s.ssoRefused(w, r, attempt, err)
		return
	}
	s.ssoFinish(w, r, idp, ident, store.SignInSAML, next)
}

// oidcCallback is GET /sso/oidc/{idp}/callback?code=&state=: the state
// must be this browser's (ssoCookie), then the code is redeemed with the
// PKCE verifier and the ID token's nonce checked.
func (s *ssoPages) oidcCallback(w http.ResponseWriter, r *http.Request) {
	dashHeaders(w)
	idp, err := s.lookupIdP(r)
	if err != nil {
		s.ssoFail(w, r, "/", err)
		return
	}
	q := r.URL.Query()
	f := flowOf(r, idp.ID)
	next := "/"
	if f != nil {
		next = safeNext(f.Next)
	}
	s.setFlowCookie(w, r, nil, false)
	flow := &sso.OIDCFlow{}
	if f != nil {
		flow = &sso.OIDCFlow{State: f.State, Nonce: f.Nonce, Verifier: f.Verifier}
	}
	attempt := ssoAttempt{idp: idp, method: store.SignInOIDC, reason: "protocol", next: next}
	if err := sso.CheckState(flow, q.Get("state")); err != nil {
		s.ssoRefused(w, r, attempt, err)
		return
	}
	if e := q.Get("error"); e != "" {
		attempt.reason = "provider_error"
		s.ssoRefused(w, r, attempt, controlplane.Errorf(http.StatusUnauthorized, codes.SSOProviderFailed,
			"The OpenID provider %s did not sign you in: %s %s", idp.Name, controlplane.Truncate(e, 100), controlplane.Truncate(q.Get("error_description"), 200)))
		return
	}
	ident, err := s.sso.OIDCFinish(r.Context(), idp, s.baseURL(r), flow, q.Get("code"))
	if err != nil {
		s.ssoRefused(w, r, attempt, err)
		return
	}
	s.ssoFinish(w, r, idp, ident, store.SignInOIDC, next)
}
