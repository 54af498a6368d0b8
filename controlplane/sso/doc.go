// Package sso signs dashboard users in through an account's identity
// providers: a SAML 2.0 service provider (github.com/crewjam/saml over
// github.com/russellhaering/goxmldsig) and an OpenID Connect relying party
// (github.com/coreos/go-oidc/v3 with golang.org/x/oauth2), plus the DNS
// check that proves an account's claim on an email domain.
//
// Invariants: a SAML response is accepted only when signed with a SHA-2
// algorithm by a certificate of the IdP's metadata, for this service
// provider's audience and ACS, within its validity window, never twice
// (store.ConsumeAssertion, shared by every control plane), and in
// response to a request this browser started unless the IdP allows
// IdP-initiated sign-in. An OIDC sign-in needs the state and nonce this
// browser was given, the PKCE verifier, a valid ID token from the issuer
// for this client, and a verified email address. The package renders no
// pages and sets no cookies: the dashboard does (controlplane/dashboard).
package sso
