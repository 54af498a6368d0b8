package sso

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
)

// OIDCRedirectURL is the redirect (callback) URL of identity provider
// idpID under the dashboard's base URL: "<base>/sso/oidc/<idp_id>/callback",
// which is registered at the provider.
func OIDCRedirectURL(base, idpID string) string { return base + "/sso/oidc/" + idpID + "/callback" }

// OIDCFlow is one authorization code flow in progress: the URL to send
// the browser to, and what the browser must present at the callback
// (the caller binds it to the browser, for example in a short-lived
// cookie). State, Nonce and Verifier are 256-bit random strings.
type OIDCFlow struct {
	URL      string
	State    string
	Nonce    string
	Verifier string // PKCE code verifier (RFC 7636); its S256 challenge is in URL
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// provider returns the OIDC provider of idp from its discovery document
// (cached for Config.MetadataTTL).
func (m *Manager) provider(ctx context.Context, idp *store.IdentityProvider) (*oidc.Provider, error) {
	if idp.Kind != store.IdPOIDC {
		return nil, refuse(http.StatusNotFound, codes.SSONoProvider, nil, "%s is not an OIDC identity provider.", idp.ID)
	}
	return fetchCached(ctx, m, idp.ID+" "+idp.OIDC.Issuer, func(ctx context.Context) (*oidc.Provider, error) {
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, m.cfg.HTTPClient), idp.OIDC.Issuer)
		if err != nil {
			return nil, providerFailed(err, "The OpenID provider %s (%s) could not be discovered. Check the issuer URL and that the control plane can reach it.", idp.Name, idp.OIDC.Issuer)
		}
		return p, nil
	})
}

// oauthConfig is the OAuth 2.0 client of idp: its client ID and secret,
// the callback under base, and the scopes "openid" plus the configured
// ones.
func (m *Manager) oauthConfig(ctx context.Context, idp *store.IdentityProvider, base string) (*oauth2.Config, *oidc.Provider, error) {
	p, err := m.provider(ctx, idp)
	if err != nil {
		return nil, nil, err
	}
	secret, err := m.store.IdentityProviderSecret(ctx, idp.ID)
	if err != nil {
		return nil, nil, err
	}
	scopes := []string{oidc.ScopeOpenID}
	for _, s := range idp.OIDC.Scopes {
		if s != oidc.ScopeOpenID {
			scopes = append(scopes, s)
		}
	}
	return &oauth2.Config{ClientID: idp.OIDC.ClientID, ClientSecret: secret, Endpoint: p.Endpoint(),
		RedirectURL: OIDCRedirectURL(base, idp.ID), Scopes: scopes}, p, nil
}

// OIDCStart begins an authorization code flow with PKCE (S256), a state
// and a nonce.
func (m *Manager) OIDCStart(ctx context.Context, idp *store.IdentityProvider, base string) (*OIDCFlow, error) {
	cfg, _, err := m.oauthConfig(ctx, idp, base)
	if err != nil {
		return nil, err
	}
	f := &OIDCFlow{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier()}
	f.URL = cfg.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	return f, nil
}

// CheckState compares the state a callback carries with the flow's, in
// constant time: a mismatch (a callback this browser did not start) is
// codes.SSOStateInvalid.
func CheckState(flow *OIDCFlow, got string) error {
	if flow == nil || flow.State == "" || subtle.ConstantTimeCompare([]byte(flow.State), []byte(got)) != 1 {
		return refuse(http.StatusUnauthorized, codes.SSOStateInvalid, nil,
			"This sign-in callback does not belong to a sign-in this browser started (state). Start again from the sign-in page.")
	}
	return nil
}

// OIDCFinish completes the flow at the callback (after CheckState): it
// redeems code with the PKCE verifier, verifies the ID token (issuer,
// audience, expiry, signature) and its nonce, and reads the email from the
// ID token, or from the userinfo endpoint when the token has none. The
// email must be verified (email_verified true), per OpenID Connect Core
// §5.1; else codes.SSOEmailUnverified.
func (m *Manager) OIDCFinish(ctx context.Context, idp *store.IdentityProvider, base string, flow *OIDCFlow, code string) (*Identity, error) {
	cfg, p, err := m.oauthConfig(ctx, idp, base)
	if err != nil {
		return nil, err
	}
	hctx := oidc.ClientContext(ctx, m.cfg.HTTPClient)
	tok, err := cfg.Exchange(hctx, code, oauth2.VerifierOption(flow.Verifier))
	if err != nil {
		return nil, providerFailed(err, "The OpenID provider %s refused to redeem the sign-in code. Sign in again; if it persists, check the client ID and secret.", idp.Name)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, invalidResponse(nil, "The OpenID provider %s returned no ID token. Check that the client requests the openid scope.", idp.Name)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: idp.OIDC.ClientID}).Verify(hctx, raw)
	if err != nil {
		return nil, invalidResponse(err, "The ID token from %s was refused (issuer, audience, expiry or signature). Sign in again.", idp.Name)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(flow.Nonce)) != 1 {
		return nil, refuse(http.StatusUnauthorized, codes.SSOStateInvalid, nil,
			"The ID token was issued for another sign-in (nonce). Start again from the sign-in page.")
	}
	var c struct {
		Email         string `json:"email"`
		EmailVerified any    `json:"email_verified"`
		Name          string `json:"name"`
		Groups        []string
	}
	if err := idt.Claims(&c); err != nil {
		return nil, invalidResponse(err, "The ID token from %s cannot be read.", idp.Name)
	}
	if c.Email == "" {
		ui, err := p.UserInfo(hctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, providerFailed(err, "The OpenID provider %s's userinfo endpoint failed. Sign in again.", idp.Name)
		}
		if ui.Subject != idt.Subject {
			return nil, invalidResponse(nil, "The userinfo answer of %s is for another user than the ID token.", idp.Name)
		}
		if err := ui.Claims(&c); err != nil {
			return nil, invalidResponse(err, "The userinfo answer of %s cannot be read.", idp.Name)
		}
	}
	if c.Email == "" || !isTrue(c.EmailVerified) {
		return nil, refuse(http.StatusUnauthorized, codes.SSOEmailUnverified, nil,
			"The OpenID provider %s gave no verified email address (email and email_verified). Verify your address at the provider, or ask its administrator to release the email scope.", idp.Name)
	}
	return &Identity{Email: c.Email, Name: c.Name, Subject: idt.Subject}, nil
}

// isTrue reads an email_verified claim: true, or the string "true" that
// some providers send.
func isTrue(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return strings.EqualFold(b, "true")
	}
	return false
}
