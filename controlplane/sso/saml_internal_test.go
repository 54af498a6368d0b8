package sso

import (
	"errors"
	"slices"
	"testing"

	"github.com/crewjam/saml"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
)

func attr(name, friendly string, values ...string) saml.Attribute {
	a := saml.Attribute{Name: name, FriendlyName: friendly}
	for _, v := range values {
		a.Values = append(a.Values, saml.AttributeValue{Value: v})
	}
	return a
}

// TestSAMLIdentity: the email, name and groups come from the IdP's
// attribute mapping, else from the names Okta, Entra ID and LDAP-style IdPs
// use, else (email) from an email NameID; no email is refused.
func TestSAMLIdentity(t *testing.T) {
	entra := []saml.Attribute{
		attr("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "", "ada@corp.example"),
		attr("http://schemas.microsoft.com/identity/claims/displayname", "", "Ada L"),
		attr("http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", "", "g1", "g2"),
	}
	for _, tc := range []struct {
		name    string
		set     store.SAMLSettings
		nameID  string
		attrs   []saml.Attribute
		want    Identity
		wantErr bool
	}{
		{name: "Entra ID claims", attrs: entra,
			want: Identity{Email: "ada@corp.example", Name: "Ada L", Groups: []string{"g1", "g2"}}},
		{name: "LDAP friendly names", attrs: []saml.Attribute{attr("urn:oid:0.9.2342.19200300.100.1.3", "mail", "bo@x.example"), attr("urn:oid:2.5.4.3", "cn", "Bo")},
			want: Identity{Email: "bo@x.example", Name: "Bo"}},
		{name: "mapped attributes win", set: store.SAMLSettings{EmailAttribute: "workEmail", NameAttribute: "full", GroupsAttribute: "teams"},
			attrs: append([]saml.Attribute{attr("workEmail", "", "cy@x.example"), attr("full", "", "Cy"), attr("teams", "", "t")}, entra...),
			want:  Identity{Email: "cy@x.example", Name: "Cy", Groups: []string{"t"}}},
		{name: "mapped attribute missing: no fallback to defaults", set: store.SAMLSettings{EmailAttribute: "workEmail"}, attrs: entra, wantErr: true},
		{name: "email NameID", nameID: "di@x.example", want: Identity{Email: "di@x.example", Subject: "di@x.example"}},
		{name: "no email", nameID: "opaque-id", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := &saml.Assertion{AttributeStatements: []saml.AttributeStatement{{Attributes: tc.attrs}}}
			if tc.nameID != "" {
				as.Subject = &saml.Subject{NameID: &saml.NameID{Value: tc.nameID}}
			}
			set := tc.set
			got, err := samlIdentity(&store.IdentityProvider{ID: "idp_x", Name: "IdP", SAML: &set}, as)
			if tc.wantErr {
				var ae *controlplane.Error
				if !errors.As(err, &ae) || ae.Code != "TG_2858" {
					t.Fatalf("got %+v, %v; want TG_2858", got, err)
				}
				return
			}
			if err != nil || got.Email != tc.want.Email || got.Name != tc.want.Name || !slices.Equal(got.Groups, tc.want.Groups) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestIsTrue: email_verified as a boolean or the string some providers send.
func TestIsTrue(t *testing.T) {
	for v, want := range map[any]bool{true: true, false: false, "true": true, "True": true, "false": false, nil: false, 1.0: false} {
		if isTrue(v) != want {
			t.Errorf("isTrue(%v) = %v", v, !want)
		}
	}
}
