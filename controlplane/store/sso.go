package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
)

// IdentityProviderKind is the protocol of an identity provider.
type IdentityProviderKind string

// The identity provider protocols.
const (
	// IdPSAML is a SAML 2.0 identity provider (Web Browser SSO profile).
	IdPSAML IdentityProviderKind = "saml"
	// IdPOIDC is an OpenID Connect provider (authorization code flow).
	IdPOIDC IdentityProviderKind = "oidc"
)

// SAMLSettings configure a SAML 2.0 identity provider (docs/sso.md#saml-checks).
type SAMLSettings struct {
	// MetadataURL is where the IdP publishes its metadata (https, or http
	// on loopback); exactly one of MetadataURL and MetadataXML is set.
	MetadataURL string `json:"metadata_url,omitempty"`
	// MetadataXML is the IdP's metadata document itself.
	MetadataXML string `json:"metadata_xml,omitempty"`
	// IdPInitiated accepts unsolicited responses (sign-in started from the
	// IdP's portal). Default false.
	IdPInitiated bool `json:"idp_initiated"`
	// EmailAttribute, NameAttribute and GroupsAttribute name the assertion
	// attributes read for the user; "" uses the defaults (docs/sso.md).
	EmailAttribute  string `json:"email_attribute,omitempty"`
	NameAttribute   string `json:"name_attribute,omitempty"`
	GroupsAttribute string `json:"groups_attribute,omitempty"`
}

// OIDCSettings configure an OpenID Connect provider (docs/sso.md#generic-oidc).
type OIDCSettings struct {
	// Issuer is the provider's issuer URL (discovery at
	// <issuer>/.well-known/openid-configuration).
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	// Scopes are requested besides "openid"; default ["email", "profile"].
	Scopes []string `json:"scopes"`
}

// IdentityProvider is an account's SAML or OIDC identity provider.
type IdentityProvider struct {
	ID        string // idp_<KSUID>
	AccountID string
	Kind      IdentityProviderKind
	Name      string
	SAML      *SAMLSettings // for IdPSAML
	OIDC      *OIDCSettings // for IdPOIDC
	// HasSecret says whether an OIDC client secret is stored. The secret
	// itself is read only by IdentityProviderSecret.
	HasSecret bool
	CreatedAt time.Time
}

// IdentityProviderCreate is the input of CreateIdentityProvider.
type IdentityProviderCreate struct {
	Kind IdentityProviderKind
	Name string
	SAML *SAMLSettings
	OIDC *OIDCSettings
	// ClientSecret is the OIDC client secret ("" for a public client).
	ClientSecret string
}

// IdentityProviderUpdate is the input of UpdateIdentityProvider; nil
// fields stay as they are. The settings of the provider's kind are
// replaced as a whole.
type IdentityProviderUpdate struct {
	Name         *string
	SAML         *SAMLSettings
	OIDC         *OIDCSettings
	ClientSecret *string
}

// Limits of identity provider settings.
const (
	maxMetadataXML = 256 << 10
	maxSSOURL      = 2048
	maxSSOScopes   = 20
)

// ssoInvalid is a codes.SSOConfigInvalid error.
func ssoInvalid(format string, args ...any) error {
	return codes.NewError(codes.SSOConfigInvalid, format, args...)
}

// checkSSOURL checks an IdP URL: absolute, https, or http to a loopback
// host (local identity providers and tests).
func checkSSOURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || len(raw) > maxSSOURL || u.Host == "" || u.User != nil || u.Fragment != "" {
		return ssoInvalid("%s must be an absolute https URL of at most %d bytes.", field, maxSSOURL)
	}
	h := u.Hostname()
	loopback := h == "localhost" || h == "127.0.0.1" || h == "::1"
	if u.Scheme != "https" && (u.Scheme != "http" || !loopback) {
		return ssoInvalid("%s must use https (http only for a loopback host); got %q.", field, truncate(raw, 100))
	}
	return nil
}

// validate checks the settings of a provider of kind k.
func validateIdP(k IdentityProviderKind, name string, saml *SAMLSettings, oidc *OIDCSettings, secret string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if strings.TrimSpace(name) == "" {
		return ssoInvalid("An identity provider needs a name, which the sign-in page shows.")
	}
	switch k {
	case IdPSAML:
		if saml == nil || oidc != nil {
			return ssoInvalid("A SAML identity provider takes saml settings, and no oidc settings.")
		}
		if (saml.MetadataURL == "") == (saml.MetadataXML == "") {
			return ssoInvalid("Give exactly one of saml.metadata_url and saml.metadata_xml.")
		}
		if saml.MetadataURL != "" {
			if err := checkSSOURL("saml.metadata_url", saml.MetadataURL); err != nil {
				return err
			}
		}
		if len(saml.MetadataXML) > maxMetadataXML {
			return ssoInvalid("saml.metadata_xml is larger than %d KiB.", maxMetadataXML>>10)
		}
		for _, a := range []string{saml.EmailAttribute, saml.NameAttribute, saml.GroupsAttribute} {
			if len(a) > 256 {
				return ssoInvalid("An attribute name is at most 256 bytes.")
			}
		}
		if secret != "" {
			return ssoInvalid("A SAML identity provider has no client secret.")
		}
	case IdPOIDC:
		if oidc == nil || saml != nil {
			return ssoInvalid("An OIDC identity provider takes oidc settings, and no saml settings.")
		}
		if err := checkSSOURL("oidc.issuer", oidc.Issuer); err != nil {
			return err
		}
		if oidc.ClientID == "" || len(oidc.ClientID) > 256 {
			return ssoInvalid("oidc.client_id is required (at most 256 bytes): the client ID the provider gave Tollgate.")
		}
		if len(oidc.Scopes) > maxSSOScopes {
			return ssoInvalid("At most %d scopes.", maxSSOScopes)
		}
		for _, sc := range oidc.Scopes {
			if sc == "" || len(sc) > 100 || strings.ContainsAny(sc, " \t\r\n\"\\") {
				return ssoInvalid("The scope %q is not a valid OAuth scope token.", truncate(sc, 100))
			}
		}
		if len(secret) > 1024 {
			return ssoInvalid("oidc.client_secret is at most 1024 bytes.")
		}
	default:
		return ssoInvalid("kind must be \"saml\" or \"oidc\", not %q.", truncate(string(k), 50))
	}
	return nil
}

const idpColumns = `SELECT id, account_id, kind, name, settings, secret <> '', created_at FROM identity_providers`

func scanIdP(r scanner) (IdentityProvider, error) {
	var (
		p        IdentityProvider
		kind, js string
		created  int64
	)
	if err := r.Scan(&p.ID, &p.AccountID, &kind, &p.Name, &js, &p.HasSecret, &created); err != nil {
		return p, err
	}
	p.Kind, p.CreatedAt = IdentityProviderKind(kind), fromMicros(created)
	var err error
	switch p.Kind {
	case IdPSAML:
		p.SAML = &SAMLSettings{}
		err = json.Unmarshal([]byte(js), p.SAML)
	case IdPOIDC:
		p.OIDC = &OIDCSettings{}
		err = json.Unmarshal([]byte(js), p.OIDC)
	}
	if err != nil {
		return p, fmt.Errorf("identity provider %s settings: %w", p.ID, err)
	}
	return p, nil
}

// settingsJSON is the settings column of p.
func (p *IdentityProvider) settingsJSON() (string, error) {
	var v any = p.SAML
	if p.Kind == IdPOIDC {
		v = p.OIDC
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// CreateIdentityProvider adds an identity provider to an account, audited
// as identity_provider_created.v0 (without the secret). Invalid settings
// are a *codes.Error with codes.SSOConfigInvalid.
func (s *Store) CreateIdentityProvider(ctx context.Context, actor Actor, accountID string, in IdentityProviderCreate) (*IdentityProvider, error) {
	if err := validateIdP(in.Kind, in.Name, in.SAML, in.OIDC, in.ClientSecret); err != nil {
		return nil, err
	}
	if in.OIDC != nil && in.OIDC.Scopes == nil {
		in.OIDC.Scopes = []string{"email", "profile"}
	}
	p := &IdentityProvider{ID: ids.New(ids.PrefixIdentityProvider), AccountID: accountID, Kind: in.Kind, Name: in.Name,
		SAML: in.SAML, OIDC: in.OIDC, HasSecret: in.ClientSecret != ""}
	js, err := p.settingsJSON()
	if err != nil {
		return nil, err
	}
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM accounts WHERE id = $1`, accountID, "account"); err != nil {
			return err
		}
		p.CreatedAt = fromMicros(t.stamp())
		if _, err := t.exec(ctx, `INSERT INTO identity_providers (id, account_id, kind, name, settings, secret, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, p.ID, accountID, string(p.Kind), p.Name, js, in.ClientSecret, t.stamp()); err != nil {
			return fmt.Errorf("creating identity provider: %w", err)
		}
		t.audit("identity_provider_created.v0", accountID, p.ID, map[string]any{"kind": p.Kind, "name": p.Name,
			"settings": json.RawMessage(js), "has_secret": p.HasSecret})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// GetIdentityProvider returns an identity provider of the account.
func (s *Store) GetIdentityProvider(ctx context.Context, accountID, id string) (*IdentityProvider, error) {
	return getByID(ctx, s.rdb, idpColumns, "identity provider", id, accountID, scanIdP)
}

// LookupIdentityProvider returns the identity provider id of whichever
// account, for the sign-in endpoints whose paths name it; ErrNotFound if
// there is none.
func (s *Store) LookupIdentityProvider(ctx context.Context, id string) (*IdentityProvider, error) {
	return getRow(s.rdb.QueryRowContext(ctx, idpColumns+` WHERE id = $1`, id), "identity provider", id, scanIdP)
}

// IdentityProviderSecret returns the OIDC client secret of provider id
// ("" for none), for the token request only.
func (s *Store) IdentityProviderSecret(ctx context.Context, id string) (string, error) {
	var secret string
	err := s.rdb.QueryRowContext(ctx, `SELECT secret FROM identity_providers WHERE id = $1`, id).Scan(&secret)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("identity provider %s: %w", id, ErrNotFound)
	}
	return secret, err
}

// ListIdentityProviders returns one page of the account's identity
// providers, newest first, and whether more remain.
func (s *Store) ListIdentityProviders(ctx context.Context, accountID string, page Page) ([]IdentityProvider, bool, error) {
	return listPage(ctx, s.rdb, idpColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanIdP)
}

// AccountIdentityProviders returns every identity provider of the
// accounts, oldest first.
func (s *Store) AccountIdentityProviders(ctx context.Context, accountIDs ...string) ([]IdentityProvider, error) {
	var out []IdentityProvider
	for _, a := range accountIDs {
		rows, err := s.rdb.QueryContext(ctx, idpColumns+` WHERE account_id = $1 ORDER BY id`, a)
		if err != nil {
			return nil, fmt.Errorf("listing identity providers: %w", err)
		}
		for rows.Next() {
			p, err := scanIdP(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, p)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("listing identity providers: %w", err)
		}
	}
	return out, nil
}

// UpdateIdentityProvider changes an identity provider of the account,
// audited as identity_provider_updated.v0 (without the secret).
func (s *Store) UpdateIdentityProvider(ctx context.Context, actor Actor, accountID, id string, in IdentityProviderUpdate) (*IdentityProvider, error) {
	var p *IdentityProvider
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if p, err = getByID(ctx, t.sql, idpColumns, "identity provider", id, accountID, scanIdP); err != nil {
			return err
		}
		var secret string
		if err := t.queryRow(ctx, `SELECT secret FROM identity_providers WHERE id = $1`, id).Scan(&secret); err != nil {
			return fmt.Errorf("reading identity provider %s: %w", id, err)
		}
		changes := map[string]any{}
		setField(&p.Name, in.Name, "name", changes)
		if in.SAML != nil {
			if p.Kind != IdPSAML {
				return ssoInvalid("%s is an OIDC identity provider: it takes oidc settings.", id)
			}
			p.SAML, changes["saml"] = in.SAML, in.SAML
		}
		if in.OIDC != nil {
			if p.Kind != IdPOIDC {
				return ssoInvalid("%s is a SAML identity provider: it takes saml settings.", id)
			}
			if in.OIDC.Scopes == nil {
				in.OIDC.Scopes = p.OIDC.Scopes
			}
			p.OIDC, changes["oidc"] = in.OIDC, in.OIDC
		}
		if in.ClientSecret != nil {
			secret, changes["client_secret"] = *in.ClientSecret, "(changed)"
		}
		if err := validateIdP(p.Kind, p.Name, p.SAML, p.OIDC, secret); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		p.HasSecret = secret != ""
		js, err := p.settingsJSON()
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE identity_providers SET name = $1, settings = $2, secret = $3 WHERE id = $4`,
			p.Name, js, secret, id); err != nil {
			return fmt.Errorf("updating identity provider %s: %w", id, err)
		}
		t.audit("identity_provider_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// DeleteIdentityProvider removes an identity provider of the account,
// audited as identity_provider_deleted.v0. Sessions signed in through it
// stay until they end.
func (s *Store) DeleteIdentityProvider(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		res, err := t.exec(ctx, `DELETE FROM identity_providers WHERE id = $1 AND account_id = $2`, id, accountID)
		if err != nil {
			return fmt.Errorf("deleting identity provider %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("identity provider %s: %w", id, ErrNotFound)
		}
		t.audit("identity_provider_deleted.v0", accountID, id, map[string]any{})
		return nil
	})
	return err
}

// SSOMode says whether an account still admits password and API-key
// sign-in to the dashboard.
type SSOMode string

// SSO modes.
const (
	// SSOMixed admits the identity providers and the previous credentials.
	SSOMixed SSOMode = "mixed"
	// SSOEnforced admits only the account's identity providers.
	SSOEnforced SSOMode = "enforced"
)

// SSOProvisioning says who an identity provider may sign in.
type SSOProvisioning string

// Provisioning modes.
const (
	// ProvisionJIT creates the user (and their membership, with
	// JITMembership's roles) on their first sign-in.
	ProvisionJIT SSOProvisioning = "jit"
	// ProvisionInviteOnly admits only members of the account.
	ProvisionInviteOnly SSOProvisioning = "invite_only"
)

// SSOSettings are an account's single sign-on policy.
type SSOSettings struct {
	AccountID    string
	Mode         SSOMode
	Provisioning SSOProvisioning
}

// GetSSOSettings returns the account's SSO settings; an account that never
// set them is mixed and JIT.
func (s *Store) GetSSOSettings(ctx context.Context, accountID string) (*SSOSettings, error) {
	st := &SSOSettings{AccountID: accountID, Mode: SSOMixed, Provisioning: ProvisionJIT}
	var mode, prov string
	err := s.rdb.QueryRowContext(ctx, `SELECT mode, provisioning FROM account_sso_settings WHERE account_id = $1`, accountID).Scan(&mode, &prov)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading SSO settings of %s: %w", accountID, err)
	}
	st.Mode, st.Provisioning = SSOMode(mode), SSOProvisioning(prov)
	return st, nil
}

// PutSSOSettings sets the account's SSO mode and provisioning ("" keeps
// the current value), audited as sso_settings_updated.v0. Enforcing SSO
// needs an identity provider, so that the account keeps a way in.
func (s *Store) PutSSOSettings(ctx context.Context, actor Actor, accountID string, mode SSOMode, prov SSOProvisioning) (*SSOSettings, error) {
	if mode != "" && !slices.Contains([]SSOMode{SSOMixed, SSOEnforced}, mode) {
		return nil, ssoInvalid("mode must be \"mixed\" or \"enforced\", not %q.", truncate(string(mode), 50))
	}
	if prov != "" && !slices.Contains([]SSOProvisioning{ProvisionJIT, ProvisionInviteOnly}, prov) {
		return nil, ssoInvalid("provisioning must be \"jit\" or \"invite_only\", not %q.", truncate(string(prov), 50))
	}
	cur, err := s.GetSSOSettings(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if mode != "" {
		cur.Mode = mode
	}
	if prov != "" {
		cur.Provisioning = prov
	}
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if cur.Mode == SSOEnforced {
			var n int
			if err := t.queryRow(ctx, `SELECT COUNT(*) FROM identity_providers WHERE account_id = $1`, accountID).Scan(&n); err != nil {
				return fmt.Errorf("counting identity providers: %w", err)
			}
			if n == 0 {
				return ssoInvalid("Add an identity provider before enforcing SSO: enforced, nobody could sign in to the dashboard.")
			}
		}
		res, err := t.exec(ctx, `UPDATE account_sso_settings SET mode = $1, provisioning = $2 WHERE account_id = $3`,
			string(cur.Mode), string(cur.Provisioning), accountID)
		if err != nil {
			return fmt.Errorf("updating SSO settings: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if _, err := t.exec(ctx, `INSERT INTO account_sso_settings (account_id, mode, provisioning) VALUES ($1, $2, $3)`,
				accountID, string(cur.Mode), string(cur.Provisioning)); err != nil {
				return fmt.Errorf("creating SSO settings: %w", err)
			}
		}
		t.audit("sso_settings_updated.v0", accountID, accountID, map[string]any{"mode": cur.Mode, "provisioning": cur.Provisioning})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cur, nil
}

// ConsumeAssertion records the SAML assertion assertionID of identity
// provider idpID as used until expires, and returns ErrConflict when it is
// recorded already (a replay). Records past their expiry are purged on the
// way. The table is shared by every control plane on the store.
func (s *Store) ConsumeAssertion(ctx context.Context, idpID, assertionID string, expires time.Time) error {
	now := s.now().UnixMicro()
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM sso_seen_assertions WHERE expires_at < $1`, now); err != nil {
		return fmt.Errorf("purging seen assertions: %w", err)
	}
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO sso_seen_assertions (id, expires_at) VALUES ($1, $2)`,
		idpID+" "+assertionID, expires.UnixMicro())
	if isUniqueViolation(err) {
		return fmt.Errorf("assertion %s of %s: %w", truncate(assertionID, 100), idpID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("recording assertion: %w", err)
	}
	return nil
}
