package dashboard

import (
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/sso"
	"github.com/tollgate/tollgate/controlplane/store"
)

// ssoAdminRoutes registers the administrators' single sign-on page.
func (s *ssoPages) ssoAdminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /single-sign-on", s.dashServe(viewPage(s.Server, "sso", "Single sign-on", s.ssoView)))
	mux.HandleFunc("POST /single-sign-on/settings", s.dashServe(s.dashSSOSettings))
	mux.HandleFunc("POST /single-sign-on/providers", s.dashServe(s.dashCreateIdP))
	mux.HandleFunc("POST /single-sign-on/providers/{id}/delete", s.dashServe(s.dashDeleteIdP))
	mux.HandleFunc("POST /single-sign-on/domains", s.dashServe(s.dashClaimDomain))
	mux.HandleFunc("POST /single-sign-on/domains/{id}/verify", s.dashServe(s.dashVerifyDomain))
	mux.HandleFunc("POST /single-sign-on/domains/{id}/delete", s.dashServe(s.dashDeleteDomain))
}

// ssoView is the single sign-on page: the account's policy, its identity
// providers with what to copy into each, and its email domains with
// their DNS challenge.
type ssoView struct {
	Settings  *store.SSOSettings
	Providers []idpView
	Domains   []store.AccountDomain
	Verified  string // the domain just verified
}

type idpView struct {
	store.IdentityProvider
	EntityID, ACSURL, RedirectURL, SignInURL string
}

func (s *ssoPages) ssoView(r *http.Request, c *dashCaller) (*ssoView, error) {
	if err := c.RequireAdmin("configure single sign-on"); err != nil {
		return nil, dashForbidden(err)
	}
	ctx := r.Context()
	v := &ssoView{}
	var err error
	if v.Settings, err = s.store.GetSSOSettings(ctx, c.AccountID()); err != nil {
		return nil, err
	}
	idps, err := s.store.AccountIdentityProviders(ctx, c.AccountID())
	if err != nil {
		return nil, err
	}
	base := s.baseURL(r)
	for _, p := range idps {
		iv := idpView{IdentityProvider: p, SignInURL: base + "/sso/start/" + p.ID}
		if p.Kind == store.IdPSAML {
			iv.EntityID, iv.ACSURL = sso.SAMLEntityID(base, p.ID), sso.SAMLACSURL(base, p.ID)
		} else {
			iv.RedirectURL = sso.OIDCRedirectURL(base, p.ID)
		}
		v.Providers = append(v.Providers, iv)
	}
	if v.Domains, _, err = s.store.ListAccountDomains(ctx, c.AccountID(), store.Page{}); err != nil {
		return nil, err
	}
	return v, nil
}

// ssoAction runs an administrator's action of the single sign-on page and
// renders the page after it (with the error, if any).
func (s *ssoPages) ssoAction(w http.ResponseWriter, r *http.Request, c *dashCaller, act func() error, show func(*ssoView)) error {
	err := c.RequireAdmin("configure single sign-on")
	if err == nil {
		err = act()
	}
	if show == nil {
		show = func(*ssoView) {}
	}
	return afterAction(s.Server, w, r, c, "sso", "Single sign-on", s.ssoView, err, show)
}

// dashSSOSettings is POST /single-sign-on/settings {mode, provisioning}.
func (s *ssoPages) dashSSOSettings(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	return s.ssoAction(w, r, c, func() error {
		_, err := s.store.PutSSOSettings(r.Context(), c.Actor, c.AccountID(),
			store.SSOMode(r.PostForm.Get("mode")), store.SSOProvisioning(r.PostForm.Get("provisioning")))
		return err
	}, nil)
}

// dashCreateIdP is POST /single-sign-on/providers: a SAML provider {kind
// saml, name, metadata_url | metadata_xml, idp_initiated, email_attribute,
// name_attribute, groups_attribute} or an OIDC one {kind oidc, name,
// issuer, client_id, client_secret, scopes (space-separated)}.
func (s *ssoPages) dashCreateIdP(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	f := r.PostForm
	in := store.IdentityProviderCreate{Kind: store.IdentityProviderKind(f.Get("kind")), Name: strings.TrimSpace(f.Get("name"))}
	switch in.Kind {
	case store.IdPSAML:
		in.SAML = &store.SAMLSettings{MetadataURL: strings.TrimSpace(f.Get("metadata_url")), MetadataXML: strings.TrimSpace(f.Get("metadata_xml")),
			IdPInitiated: f.Get("idp_initiated") == "on", EmailAttribute: strings.TrimSpace(f.Get("email_attribute")),
			NameAttribute: strings.TrimSpace(f.Get("name_attribute")), GroupsAttribute: strings.TrimSpace(f.Get("groups_attribute"))}
	case store.IdPOIDC:
		in.OIDC = &store.OIDCSettings{Issuer: strings.TrimSpace(f.Get("issuer")), ClientID: strings.TrimSpace(f.Get("client_id"))}
		if sc := strings.Fields(f.Get("scopes")); len(sc) > 0 {
			in.OIDC.Scopes = sc
		}
		in.ClientSecret = f.Get("client_secret")
	}
	return s.ssoAction(w, r, c, func() error {
		_, err := s.store.CreateIdentityProvider(r.Context(), c.Actor, c.AccountID(), in)
		return err
	}, nil)
}

// dashDeleteIdP is POST /single-sign-on/providers/{id}/delete.
func (s *ssoPages) dashDeleteIdP(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id := r.PathValue("id")
	return s.ssoAction(w, r, c, func() error {
		s.sso.Forget(id)
		return controlplane.NotFound(s.store.DeleteIdentityProvider(r.Context(), c.Actor, c.AccountID(), id), "identity provider", id)
	}, nil)
}

// dashClaimDomain is POST /single-sign-on/domains {domain}.
func (s *ssoPages) dashClaimDomain(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	return s.ssoAction(w, r, c, func() error {
		_, err := s.store.CreateAccountDomain(r.Context(), c.Actor, c.AccountID(), r.PostForm.Get("domain"))
		return err
	}, nil)
}

// dashVerifyDomain is POST /single-sign-on/domains/{id}/verify: the DNS
// challenge is looked up now (Config.Domains).
func (s *ssoPages) dashVerifyDomain(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id := r.PathValue("id")
	var done string
	return s.ssoAction(w, r, c, func() error {
		d, err := s.cfg.Domains.Verify(r.Context(), s.store, c.Actor, c.AccountID(), id)
		if err == nil {
			done = d.Domain
		}
		return err
	}, func(v *ssoView) { v.Verified = done })
}

// dashDeleteDomain is POST /single-sign-on/domains/{id}/delete.
func (s *ssoPages) dashDeleteDomain(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id := r.PathValue("id")
	return s.ssoAction(w, r, c, func() error {
		return controlplane.NotFound(s.store.DeleteAccountDomain(r.Context(), c.Actor, c.AccountID(), id), "account domain", id)
	}, nil)
}
