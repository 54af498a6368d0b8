package restapi_test

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/internal/idptest"
)

// samlMetadataXML is a minimal valid IdP metadata document.
const samlMetadataXML = `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example/metadata">` +
	`<IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
	`<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/>` +
	`</IDPSSODescriptor></EntityDescriptor>`

// TestIdentityProvidersAPI: administrators create, read, change and
// delete identity providers; bodies are strict, nested objects included;
// the OIDC client secret is write-only (never in an answer or the audit
// log); other roles are refused and change nothing.
func TestIdentityProvidersAPI(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		_, dev := e.MemberKey("dev@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamManager})
		oidcBody := map[string]any{"type": "oidc", "name": "Entra", "oidc": map[string]any{
			"issuer": "https://login.microsoftonline.com/tenant/v2.0", "client_id": "cid", "client_secret": "TOPSECRET-value"}}
		e.Must(403, e.Call("POST", "/identity_providers", dev, oidcBody))
		obj := e.Must(201, e.Call("POST", "/identity_providers", e.Admin, oidcBody))
		id := cptest.Str(obj, "id")
		o := obj["oidc"].(map[string]any)
		if o["client_secret_set"] != true || strings.Contains(string(e.Call("GET", "/identity_providers/"+id, e.Admin, nil).Body), "TOPSECRET") {
			t.Fatalf("oidc: %v", o)
		}
		if ev := e.WantAuditBy("identity_provider_created.v0", id); strings.Contains(string(ev.Payload), "TOPSECRET") {
			t.Fatalf("the audit log holds the secret: %s", ev.Payload)
		}
		if sc := o["scopes"].([]any); len(sc) != 2 {
			t.Fatalf("default scopes: %v", sc)
		}
		e.Must(403, e.Call("GET", "/identity_providers/"+id, dev, nil))
		e.Must(403, e.Call("GET", "/identity_providers", dev, nil))

		r := e.Call("POST", "/identity_providers", e.Admin, map[string]any{"type": "saml", "name": "Okta",
			"saml": map[string]any{"metadata_xml": samlMetadataXML, "entity_id": "x"}})
		if r.Status != 400 || !strings.Contains(string(r.Body), string(codes.APIUnknownParam)) {
			t.Fatalf("unknown nested field: %d %s", r.Status, r.Body)
		}
		r = e.Call("POST", "/identity_providers", e.Admin, map[string]any{"type": "saml", "name": "Okta",
			"saml": map[string]any{"metadata_url": "http://idp.example/metadata"}})
		if r.Status != 400 || !strings.Contains(string(r.Body), string(codes.SSOConfigInvalid)) {
			t.Fatalf("plain-http metadata URL: %d %s", r.Status, r.Body)
		}
		saml := e.Must(201, e.Call("POST", "/identity_providers", e.Admin, map[string]any{"type": "saml", "name": "Okta",
			"saml": map[string]any{"metadata_xml": samlMetadataXML, "idp_initiated": true, "email_attribute": "mail"}}))
		sid := cptest.Str(saml, "id")
		e.Must(200, e.Call("PATCH", "/identity_providers/"+id, e.Admin, map[string]any{"name": "Entra ID",
			"oidc": map[string]any{"issuer": "https://login.microsoftonline.com/tenant/v2.0", "client_id": "cid2"}}))
		if sec, err := e.Store.IdentityProviderSecret(cptest.Ctx(t), id); err != nil || sec != "TOPSECRET-value" {
			t.Fatalf("a PATCH without client_secret changed it: %q %v", sec, err)
		}
		e.Must(400, e.Call("PATCH", "/identity_providers/"+sid, e.Admin, map[string]any{"oidc": map[string]any{"issuer": "https://x.example", "client_id": "c"}}))
		list := e.Must(200, e.Call("GET", "/identity_providers", e.Admin, nil))
		if n := len(list["identity_providers"].([]any)); n != 2 {
			t.Fatalf("%d identity providers listed", n)
		}
		e.Must(403, e.Call("DELETE", "/identity_providers/"+sid, dev, nil))
		e.Must(204, e.Call("DELETE", "/identity_providers/"+sid, e.Admin, nil))
		e.Must(404, e.Call("GET", "/identity_providers/"+sid, e.Admin, nil))

		// SSO settings: enforced needs an identity provider; admins only.
		e.Must(403, e.Call("PATCH", "/sso_settings", dev, map[string]any{"mode": "enforced"}))
		set := e.Must(200, e.Call("PATCH", "/sso_settings", e.Admin, map[string]any{"mode": "enforced", "provisioning": "invite_only"}))
		if set["mode"] != "enforced" || set["provisioning"] != "invite_only" {
			t.Fatalf("settings: %v", set)
		}
		e.Must(400, e.Call("PATCH", "/sso_settings", e.Admin, map[string]any{"mode": "strict"}))
		e.Must(204, e.Call("DELETE", "/identity_providers/"+id, e.Admin, nil))
		e.Must(200, e.Call("PATCH", "/sso_settings", e.Admin, map[string]any{"mode": "mixed"}))
		r = e.Call("PATCH", "/sso_settings", e.Admin, map[string]any{"mode": "enforced"})
		if r.Status != 400 || !strings.Contains(string(r.Body), string(codes.SSOConfigInvalid)) {
			t.Fatalf("enforced without an identity provider: %d %s", r.Status, r.Body)
		}
	})
}

// TestAccountDomainsAPI: an administrator claims a domain and gets the TXT
// record; verification fails until the record exists and the account has
// an identity provider; a domain is verified by one account only.
func TestAccountDomainsAPI(t *testing.T) {
	ns := idptest.NewDNS(t)
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			e := cptest.NewEnv(t, storetest.DSN(t, d), cptest.Config{DNSResolver: ns.Addr})
			_, dev := e.MemberKey("dev@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamManager})
			e.Must(403, e.Call("POST", "/account_domains", dev, map[string]any{"domain": "corp.example"}))
			e.Must(400, e.Call("POST", "/account_domains", e.Admin, map[string]any{"domain": "*.corp.example"}))
			dom := e.Must(201, e.Call("POST", "/account_domains", e.Admin, map[string]any{"domain": "Corp.Example."}))
			id := cptest.Str(dom, "id")
			ch := dom["challenge"].(map[string]any)
			if dom["domain"] != "corp.example" || ch["name"] != "_tollgate-challenge.corp.example" ||
				!strings.HasPrefix(ch["value"].(string), "tollgate-domain-verification=") || dom["verified"] != false {
				t.Fatalf("domain: %v", dom)
			}
			e.Must(409, e.Call("POST", "/account_domains", e.Admin, map[string]any{"domain": "corp.example"}))
			r := e.Call("POST", "/account_domains/"+id+"/verify", e.Admin, nil)
			if r.Status != 409 || !strings.Contains(string(r.Body), string(codes.DomainNotVerified)) {
				t.Fatalf("verify without the record: %d %s", r.Status, r.Body)
			}
			ns.SetTXT(ch["name"].(string), ch["value"].(string))
			r = e.Call("POST", "/account_domains/"+id+"/verify", e.Admin, nil)
			if r.Status != 409 || !strings.Contains(string(r.Body), string(codes.DomainNeedsProvider)) {
				t.Fatalf("verify without an identity provider: %d %s", r.Status, r.Body)
			}
			e.Must(201, e.Call("POST", "/identity_providers", e.Admin, map[string]any{"type": "saml", "name": "Okta",
				"saml": map[string]any{"metadata_xml": samlMetadataXML}}))
			e.Must(403, e.Call("POST", "/account_domains/"+id+"/verify", dev, nil))
			v := e.Must(200, e.Call("POST", "/account_domains/"+id+"/verify", e.Admin, nil))
			if v["verified"] != true {
				t.Fatalf("verified: %v", v)
			}
			e.WantAuditBy("account_domain_verified.v0", id)

			// Another account claims it too, proves the same record: refused.
			other, key := e.OtherAccount("other")
			_ = other
			od := e.Must(201, e.Call("POST", "/account_domains", key, map[string]any{"domain": "corp.example"}))
			och := od["challenge"].(map[string]any)
			ns.SetTXT(och["name"].(string), ch["value"].(string), och["value"].(string))
			e.Must(201, e.Call("POST", "/identity_providers", key, map[string]any{"type": "saml", "name": "Okta",
				"saml": map[string]any{"metadata_xml": samlMetadataXML}}))
			r = e.Call("POST", "/account_domains/"+cptest.Str(od, "id")+"/verify", key, nil)
			if r.Status != 409 || !strings.Contains(string(r.Body), string(codes.DomainTaken)) {
				t.Fatalf("a second account verified the domain: %d %s", r.Status, r.Body)
			}
			e.Must(204, e.Call("DELETE", "/account_domains/"+id, e.Admin, nil))
			e.Must(200, e.Call("POST", "/account_domains/"+cptest.Str(od, "id")+"/verify", key, nil))
		})
	}
}
