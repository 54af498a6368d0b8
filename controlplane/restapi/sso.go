package restapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/sso"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// The single sign-on resources (docs/sso.md#api), Tollgate's own (the
// hosted platform's API has none): /identity_providers, /sso_settings,
// /account_domains. Only administrators may read or change them, as the
// platform's RBAC reserves account settings to them. An OIDC client
// secret is write-only: answers say only whether one is set.

// samlJSON is an identity provider's SAML settings, and (answers only)
// what to copy into the IdP.
type samlJSON struct {
	MetadataURL     string `json:"metadata_url"`
	MetadataXML     string `json:"metadata_xml"`
	IdPInitiated    bool   `json:"idp_initiated"`
	EmailAttribute  string `json:"email_attribute"`
	NameAttribute   string `json:"name_attribute"`
	GroupsAttribute string `json:"groups_attribute"`
	SPEntityID      string `json:"sp_entity_id,omitempty"`
	SPACSURL        string `json:"sp_acs_url,omitempty"`
}

// oidcJSON is an identity provider's OIDC settings.
type oidcJSON struct {
	Issuer          string   `json:"issuer"`
	ClientID        string   `json:"client_id"`
	Scopes          []string `json:"scopes"`
	ClientSecretSet bool     `json:"client_secret_set"`
	RedirectURL     string   `json:"redirect_url,omitempty"`
}

// identityProviderJSON is the identity_providers object.
type identityProviderJSON struct {
	ID        string    `json:"id"`
	URI       string    `json:"uri"`
	CreatedAt string    `json:"created_at"`
	Type      string    `json:"type"`
	Name      string    `json:"name"`
	SAML      *samlJSON `json:"saml"`
	OIDC      *oidcJSON `json:"oidc"`
	SignInURL string    `json:"sign_in_url,omitempty"`
}

// samlBody is the saml object of a request: strict (unknown fields are
// refused), whole (it replaces the provider's SAML settings).
type samlBody store.SAMLSettings

// UnmarshalJSON decodes the object, refusing unknown fields.
func (b *samlBody) UnmarshalJSON(data []byte) error {
	return strictJSON(data, (*store.SAMLSettings)(b))
}

// oidcBody is the oidc object of a request; client_secret is write-only.
type oidcBody struct {
	Issuer       string   `json:"issuer"`
	ClientID     string   `json:"client_id"`
	Scopes       []string `json:"scopes"`
	ClientSecret *string  `json:"client_secret"`
}

// UnmarshalJSON decodes the object, refusing unknown fields.
func (b *oidcBody) UnmarshalJSON(data []byte) error {
	type plain oidcBody
	return strictJSON(data, (*plain)(b))
}

// strictJSON decodes data into v, refusing fields v does not have.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

type identityProviderCreateBody struct {
	Type string    `json:"type"`
	Name string    `json:"name"`
	SAML *samlBody `json:"saml"`
	OIDC *oidcBody `json:"oidc"`
}

type identityProviderUpdateBody struct {
	Name *string   `json:"name"`
	SAML *samlBody `json:"saml"`
	OIDC *oidcBody `json:"oidc"`
}

type ssoSettingsJSON struct {
	URI          string `json:"uri"`
	Mode         string `json:"mode"`
	Provisioning string `json:"provisioning"`
}

type ssoSettingsBody struct {
	Mode         string `json:"mode"`
	Provisioning string `json:"provisioning"`
}

// accountDomainJSON is the account_domains object.
type accountDomainJSON struct {
	ID         string `json:"id"`
	URI        string `json:"uri"`
	CreatedAt  string `json:"created_at"`
	Domain     string `json:"domain"`
	Verified   bool   `json:"verified"`
	VerifiedAt string `json:"verified_at,omitempty"`
	// Challenge is the DNS record that proves the claim.
	Challenge struct {
		Type  string `json:"type"`
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"challenge"`
}

type accountDomainCreateBody struct {
	Domain string `json:"domain"`
}

// ssoAPI serves the single sign-on resources.
type ssoAPI struct{ *Server }

func (s *ssoAPI) routes(mux *http.ServeMux) {
	s.route(mux, "/identity_providers", methods{http.MethodGet: s.listIdPs, http.MethodPost: s.createIdP})
	s.route(mux, "/identity_providers/{id}", methods{http.MethodGet: s.getIdP,
		http.MethodPatch: s.updateIdP, http.MethodDelete: s.deleteIdP})
	s.route(mux, "/sso_settings", methods{http.MethodGet: s.getSettings, http.MethodPatch: s.updateSettings})
	s.route(mux, "/account_domains", methods{http.MethodGet: s.listDomains, http.MethodPost: s.createDomain})
	s.route(mux, "/account_domains/{id}", methods{http.MethodGet: s.getDomain, http.MethodDelete: s.deleteDomain})
	s.route(mux, "/account_domains/{id}/verify", methods{http.MethodPost: s.verifyDomain})
}

// admin wraps an operation that only administrators may run.
func admin(h controlplane.HandlerFunc) controlplane.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
		if err := c.RequireAdmin("read or change single sign-on settings"); err != nil {
			return err
		}
		return h(w, r, c)
	}
}

func (s *ssoAPI) idpJSON(r *http.Request, p *store.IdentityProvider) identityProviderJSON {
	j := identityProviderJSON{ID: p.ID, URI: s.baseURL(r) + "/identity_providers/" + p.ID, CreatedAt: timestamp(p.CreatedAt),
		Type: string(p.Kind), Name: p.Name}
	dash := s.cfg.DashboardURL
	if dash != "" {
		j.SignInURL = dash + "/sso/start/" + p.ID
	}
	if p.SAML != nil {
		x := samlJSON(samlJSONOf(p.SAML))
		if dash != "" {
			x.SPEntityID, x.SPACSURL = sso.SAMLEntityID(dash, p.ID), sso.SAMLACSURL(dash, p.ID)
		}
		j.SAML = &x
	}
	if p.OIDC != nil {
		j.OIDC = &oidcJSON{Issuer: p.OIDC.Issuer, ClientID: p.OIDC.ClientID, Scopes: p.OIDC.Scopes, ClientSecretSet: p.HasSecret}
		if dash != "" {
			j.OIDC.RedirectURL = sso.OIDCRedirectURL(dash, p.ID)
		}
	}
	return j
}

func samlJSONOf(s *store.SAMLSettings) samlJSON {
	return samlJSON{MetadataURL: s.MetadataURL, MetadataXML: s.MetadataXML, IdPInitiated: s.IdPInitiated,
		EmailAttribute: s.EmailAttribute, NameAttribute: s.NameAttribute, GroupsAttribute: s.GroupsAttribute}
}

func (s *ssoAPI) listIdPs(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return admin(listPage(s.Server, "identity_providers", ids.PrefixIdentityProvider, s.store.ListIdentityProviders, s.idpJSON,
		func(p *store.IdentityProvider) string { return p.ID }))(w, r, c)
}

func (s *ssoAPI) getIdP(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return admin(getOne(ids.PrefixIdentityProvider, "identity provider", s.store.GetIdentityProvider, s.idpJSON))(w, r, c)
}

// createIdP is POST /identity_providers {type, name, saml | oidc}.
func (s *ssoAPI) createIdP(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body identityProviderCreateBody
	if _, err := s.beginWrite(w, r, "", func() error { return c.RequireAdmin("add identity providers") }, &body); err != nil {
		return strictBodyError(err)
	}
	in := store.IdentityProviderCreate{Kind: store.IdentityProviderKind(body.Type), Name: body.Name}
	if body.SAML != nil {
		in.SAML = (*store.SAMLSettings)(body.SAML)
	}
	if body.OIDC != nil {
		in.OIDC = &store.OIDCSettings{Issuer: body.OIDC.Issuer, ClientID: body.OIDC.ClientID, Scopes: body.OIDC.Scopes}
		if body.OIDC.ClientSecret != nil {
			in.ClientSecret = *body.OIDC.ClientSecret
		}
	}
	p, err := s.store.CreateIdentityProvider(r.Context(), c.Actor, c.AccountID(), in)
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusCreated, s.idpJSON(r, p))
	return nil
}

// updateIdP is PATCH /identity_providers/{id} {name, saml | oidc}: the
// settings object replaces the provider's; oidc.client_secret, when given,
// replaces the secret (null or absent keeps it).
func (s *ssoAPI) updateIdP(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body identityProviderUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixIdentityProvider, func() error { return c.RequireAdmin("change identity providers") }, &body)
	if err != nil {
		return strictBodyError(err)
	}
	in := store.IdentityProviderUpdate{Name: body.Name}
	if body.SAML != nil {
		in.SAML = (*store.SAMLSettings)(body.SAML)
	}
	if body.OIDC != nil {
		in.OIDC = &store.OIDCSettings{Issuer: body.OIDC.Issuer, ClientID: body.OIDC.ClientID, Scopes: body.OIDC.Scopes}
		in.ClientSecret = body.OIDC.ClientSecret
	}
	p, err := s.store.UpdateIdentityProvider(r.Context(), c.Actor, c.AccountID(), id, in)
	if err != nil {
		return controlplane.NotFound(err, "identity provider", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.idpJSON(r, p))
	return nil
}

func (s *ssoAPI) deleteIdP(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixIdentityProvider, "identity provider", func(_ context.Context, c *controlplane.Caller, _ string) error {
		return c.RequireAdmin("remove identity providers")
	}, s.store.DeleteIdentityProvider)(w, r, c)
}

// strictBodyError names an unknown field of a nested settings object as
// the API's unknown-field error (TG_214).
func strictBodyError(err error) error {
	var ae *controlplane.Error
	if errors.As(err, &ae) && ae.Code == codes.APIBodyInvalid && ae.Cause != nil {
		return controlplane.BadRequest(codes.APIUnknownParam, "%s", "The saml or oidc object is not valid: "+controlplane.Truncate(ae.Cause.Error(), 200)+".")
	}
	return err
}

func (s *ssoAPI) settingsJSON(r *http.Request, st *store.SSOSettings) ssoSettingsJSON {
	return ssoSettingsJSON{URI: s.baseURL(r) + "/sso_settings", Mode: string(st.Mode), Provisioning: string(st.Provisioning)}
}

// getSettings is GET /sso_settings: the account's mode and provisioning.
func (s *ssoAPI) getSettings(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	if err := noBody(r); err != nil {
		return err
	}
	if err := c.RequireAdmin("read single sign-on settings"); err != nil {
		return err
	}
	st, err := s.store.GetSSOSettings(r.Context(), c.AccountID())
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusOK, s.settingsJSON(r, st))
	return nil
}

// updateSettings is PATCH /sso_settings {mode, provisioning}.
func (s *ssoAPI) updateSettings(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body ssoSettingsBody
	if _, err := s.beginWrite(w, r, "", func() error { return c.RequireAdmin("change single sign-on settings") }, &body); err != nil {
		return err
	}
	st, err := s.store.PutSSOSettings(r.Context(), c.Actor, c.AccountID(), store.SSOMode(body.Mode), store.SSOProvisioning(body.Provisioning))
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusOK, s.settingsJSON(r, st))
	return nil
}

func (s *ssoAPI) domainJSON(r *http.Request, d *store.AccountDomain) accountDomainJSON {
	j := accountDomainJSON{ID: d.ID, URI: s.baseURL(r) + "/account_domains/" + d.ID, CreatedAt: timestamp(d.CreatedAt),
		Domain: d.Domain, Verified: d.Verified()}
	if d.Verified() {
		j.VerifiedAt = timestamp(d.VerifiedAt)
	}
	j.Challenge.Type, j.Challenge.Name, j.Challenge.Value = "TXT", d.ChallengeName(), d.ChallengeValue()
	return j
}

func (s *ssoAPI) listDomains(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return admin(listPage(s.Server, "account_domains", ids.PrefixAccountDomain, s.store.ListAccountDomains, s.domainJSON,
		func(d *store.AccountDomain) string { return d.ID }))(w, r, c)
}

func (s *ssoAPI) getDomain(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return admin(getOne(ids.PrefixAccountDomain, "account domain", s.store.GetAccountDomain, s.domainJSON))(w, r, c)
}

// createDomain is POST /account_domains {domain}: the claim, unverified,
// with the TXT record to create.
func (s *ssoAPI) createDomain(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body accountDomainCreateBody
	if _, err := s.beginWrite(w, r, "", func() error { return c.RequireAdmin("claim email domains") }, &body); err != nil {
		return err
	}
	d, err := s.store.CreateAccountDomain(r.Context(), c.Actor, c.AccountID(), body.Domain)
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusCreated, s.domainJSON(r, d))
	return nil
}

// verifyDomain is POST /account_domains/{id}/verify: the TXT record is
// looked up now (Config.Domains).
func (s *ssoAPI) verifyDomain(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := objectPathID(r, ids.PrefixAccountDomain)
	if err != nil {
		return err
	}
	if err := c.RequireAdmin("verify email domains"); err != nil {
		return err
	}
	d, err := s.cfg.Domains.Verify(r.Context(), s.store, c.Actor, c.AccountID(), id)
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusOK, s.domainJSON(r, d))
	return nil
}

func (s *ssoAPI) deleteDomain(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixAccountDomain, "account domain", func(_ context.Context, c *controlplane.Caller, _ string) error {
		return c.RequireAdmin("give up email domains")
	}, s.store.DeleteAccountDomain)(w, r, c)
}
