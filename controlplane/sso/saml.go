package sso

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
)

// SAMLEntityID is the service provider's entity ID for identity provider
// idpID under the dashboard's base URL: its metadata URL,
// "<base>/sso/saml/<idp_id>/metadata", which the IdP is given.
func SAMLEntityID(base, idpID string) string { return base + "/sso/saml/" + idpID + "/metadata" }

// SAMLACSURL is the assertion consumer service URL for identity provider
// idpID: "<base>/sso/saml/<idp_id>/acs" (HTTP-POST binding only).
func SAMLACSURL(base, idpID string) string { return base + "/sso/saml/" + idpID + "/acs" }

// Default attribute names read when an identity provider's mapping leaves
// one unset, compared with an attribute's Name and FriendlyName. They are
// what Okta, Entra ID and LDAP-style IdPs send.
var (
	defaultEmailAttrs = []string{"email", "mail", "emailaddress", "urn:oid:0.9.2342.19200300.100.1.3",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"}
	defaultNameAttrs = []string{"displayName", "name", "cn", "urn:oid:2.5.4.3",
		"http://schemas.microsoft.com/identity/claims/displayname"}
	defaultGroupAttrs = []string{"groups", "memberOf", "eduPersonAffiliation",
		"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"}
)

// replayCache is crewjam/saml's AssertionReplayCache over the store, per
// identity provider.
type replayCache struct {
	ctx   context.Context
	st    *store.Store
	idpID string
}

// Consume records assertionID until expiresAt; a second use is
// saml.ErrAssertionReplayed.
func (c replayCache) Consume(assertionID string, expiresAt time.Time) error {
	err := c.st.ConsumeAssertion(c.ctx, c.idpID, assertionID, expiresAt)
	if errors.Is(err, store.ErrConflict) {
		return saml.ErrAssertionReplayed
	}
	return err
}

// idpMetadata returns the IdP's metadata: parsed from the settings, or
// fetched from the metadata URL (cached for Config.MetadataTTL).
func (m *Manager) idpMetadata(ctx context.Context, idp *store.IdentityProvider) (*saml.EntityDescriptor, error) {
	s := idp.SAML
	if s.MetadataXML != "" {
		md, err := samlsp.ParseMetadata([]byte(s.MetadataXML))
		if err != nil {
			return nil, refuse(http.StatusBadRequest, codes.SSOConfigInvalid, err,
				"The SAML metadata of identity provider %s cannot be read: %v. Paste the IdP's metadata XML again.", idp.ID, err)
		}
		return md, nil
	}
	return fetchCached(ctx, m, idp.ID+" "+s.MetadataURL, func(ctx context.Context) (*saml.EntityDescriptor, error) {
		u, err := url.Parse(s.MetadataURL)
		if err != nil {
			return nil, err
		}
		md, err := samlsp.FetchMetadata(ctx, m.cfg.HTTPClient, *u)
		if err != nil {
			return nil, providerFailed(err, "The SAML metadata of identity provider %s could not be fetched from %s. Check the URL and that the control plane can reach it.", idp.ID, s.MetadataURL)
		}
		return md, nil
	})
}

// serviceProvider is the SAML service provider for idp under base: SHA-1
// signatures refused, assertions recorded against replay in the store,
// HTTP-POST responses only, unsolicited responses only when the IdP
// allows IdP-initiated sign-in.
func (m *Manager) serviceProvider(ctx context.Context, idp *store.IdentityProvider, base string) (*saml.ServiceProvider, error) {
	if idp.Kind != store.IdPSAML {
		return nil, refuse(http.StatusNotFound, codes.SSONoProvider, nil, "%s is not a SAML identity provider.", idp.ID)
	}
	md, err := m.idpMetadata(ctx, idp)
	if err != nil {
		return nil, err
	}
	mdURL, _ := url.Parse(SAMLEntityID(base, idp.ID))
	acsURL, _ := url.Parse(SAMLACSURL(base, idp.ID))
	return &saml.ServiceProvider{
		EntityID:                         mdURL.String(),
		MetadataURL:                      *mdURL,
		AcsURL:                           *acsURL,
		IDPMetadata:                      md,
		AuthnNameIDFormat:                saml.UnspecifiedNameIDFormat,
		AllowIDPInitiated:                idp.SAML.IdPInitiated,
		RejectSHA1Signatures:             true,
		ReplayCache:                      replayCache{ctx: ctx, st: m.store, idpID: idp.ID},
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
	}, nil
}

// SAMLMetadata returns the service provider's metadata document for idp,
// to give the IdP.
func (m *Manager) SAMLMetadata(ctx context.Context, idp *store.IdentityProvider, base string) ([]byte, error) {
	sp, err := m.serviceProvider(ctx, idp, base)
	if err != nil {
		return nil, err
	}
	return xml.MarshalIndent(sp.Metadata(), "", "  ")
}

// SAMLRequest starts an SP-initiated sign-in: it returns the IdP URL to
// redirect the browser to (HTTP-Redirect binding, no RelayState) and the
// AuthnRequest's ID, which the caller binds to the browser and passes to
// SAMLResponse.
func (m *Manager) SAMLRequest(ctx context.Context, idp *store.IdentityProvider, base string) (string, string, error) {
	sp, err := m.serviceProvider(ctx, idp, base)
	if err != nil {
		return "", "", err
	}
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return "", "", providerFailed(err, "The SAML metadata of identity provider %s names no HTTP-Redirect single sign-on service. Check the IdP's metadata.", idp.ID)
	}
	u, err := req.Redirect("", sp)
	if err != nil {
		return "", "", fmt.Errorf("encoding the SAML request: %w", err)
	}
	return u.String(), req.ID, nil
}

// SAMLResponse checks the SAML response posted to the ACS of idp (r's
// form parsed; SAMLResponse only, no artifacts) and returns who it signs
// in. requestIDs are the IDs of the requests this browser started for idp
// (none for an IdP-initiated sign-in). Every refusal is a
// *controlplane.Error: codes.SSOReplayed for an assertion used already,
// codes.SSOIdPInitiatedOff for an unsolicited response the IdP may not
// send, codes.SSOResponseInvalid for anything else (bad or SHA-1
// signature, another audience or destination, expired, wrong
// InResponseTo), with the library's reason in the log only.
func (m *Manager) SAMLResponse(ctx context.Context, idp *store.IdentityProvider, base string, r *http.Request, requestIDs []string) (*Identity, error) {
	sp, err := m.serviceProvider(ctx, idp, base)
	if err != nil {
		return nil, err
	}
	if r.PostForm.Get("SAMLResponse") == "" || r.PostForm.Has("SAMLart") {
		return nil, invalidResponse(nil, "This address takes a SAML response posted by the identity provider (HTTP-POST binding). Start the sign-in again from the sign-in page.")
	}
	as, err := sp.ParseResponse(r, requestIDs)
	if err != nil {
		return nil, samlRefusal(idp, err, len(requestIDs) == 0)
	}
	return samlIdentity(idp, as)
}

// samlRefusal maps a crewjam/saml refusal to what the browser sees.
func samlRefusal(idp *store.IdentityProvider, err error, unsolicited bool) error {
	cause := err
	var ire *saml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		cause = ire.PrivateErr
	}
	switch {
	case errors.Is(cause, saml.ErrAssertionReplayed):
		return refuse(http.StatusUnauthorized, codes.SSOReplayed, cause,
			"This SAML assertion was used to sign in already; an assertion signs in once. Sign in again from the sign-in page.")
	case unsolicited && !idp.SAML.IdPInitiated && errors.Is(cause, saml.ErrRequestIDMismatch):
		return refuse(http.StatusUnauthorized, codes.SSOIdPInitiatedOff, cause,
			"The identity provider %s sent a sign-in that this browser did not start, and it does not allow IdP-initiated sign-in. Start from the Tollgate sign-in page, or ask an administrator to allow IdP-initiated sign-in.", idp.Name)
	case errors.Is(cause, saml.ErrRequestIDMismatch):
		return invalidResponse(cause, "The SAML response answers a sign-in that this browser did not start (InResponseTo). Start again from the sign-in page.")
	case errors.Is(cause, saml.ErrExpired), errors.Is(cause, saml.ErrNotYetValid):
		return invalidResponse(cause, "The SAML response is expired or not yet valid. Check the clocks of the identity provider and the control plane, and sign in again.")
	case errors.Is(cause, saml.ErrAudienceMismatch), errors.Is(cause, saml.ErrDestinationMismatch):
		return invalidResponse(cause, "The SAML response was made for another service provider (audience or destination). Check the entity ID and ACS URL configured at the identity provider.")
	case errors.Is(cause, saml.ErrUnsupported), errors.Is(cause, saml.ErrInvalidSignature), errors.Is(cause, saml.ErrUntrustedCertificate):
		return invalidResponse(cause, "The SAML response's signature was refused: it must be signed with SHA-256 or stronger by a certificate in the identity provider's metadata.")
	}
	return invalidResponse(cause, "The SAML response from %s was refused. Sign in again; if it persists, an administrator finds the reason in the control plane's log.", idp.Name)
}

// samlIdentity reads the email, name and groups from an accepted
// assertion with the IdP's attribute mapping (or the defaults); the
// NameID stands for the email when it is an address.
func samlIdentity(idp *store.IdentityProvider, as *saml.Assertion) (*Identity, error) {
	id := &Identity{}
	if as.Subject != nil && as.Subject.NameID != nil {
		id.Subject = as.Subject.NameID.Value
	}
	pick := func(mapped string, defaults []string) []string {
		names := defaults
		if mapped != "" {
			names = []string{mapped}
		}
		for _, n := range names {
			for _, st := range as.AttributeStatements {
				for _, a := range st.Attributes {
					if strings.EqualFold(a.Name, n) || (a.FriendlyName != "" && strings.EqualFold(a.FriendlyName, n)) {
						var vs []string
						for _, v := range a.Values {
							if v.Value != "" {
								vs = append(vs, v.Value)
							}
						}
						if len(vs) > 0 {
							return vs
						}
					}
				}
			}
		}
		return nil
	}
	if v := pick(idp.SAML.EmailAttribute, defaultEmailAttrs); len(v) > 0 {
		id.Email = v[0]
	} else if strings.Contains(id.Subject, "@") {
		id.Email = id.Subject
	}
	if v := pick(idp.SAML.NameAttribute, defaultNameAttrs); len(v) > 0 {
		id.Name = v[0]
	}
	id.Groups = pick(idp.SAML.GroupsAttribute, defaultGroupAttrs)
	if id.Email == "" {
		return nil, refuse(http.StatusUnauthorized, codes.SSOEmailUnverified, nil,
			"The identity provider %s sent no email address (attribute %q or an email NameID). Configure it to release the user's email.",
			idp.Name, firstNonEmpty(idp.SAML.EmailAttribute, "email"))
	}
	return id, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
