package scim

import (
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
)

// The discovery endpoints (RFC 7644 §4): what this service provider
// supports, its resource types and their schemas.

type supported struct {
	Supported bool `json:"supported"`
}

type filterSupport struct {
	Supported  bool `json:"supported"`
	MaxResults int  `json:"maxResults"`
}

type bulkSupport struct {
	Supported      bool `json:"supported"`
	MaxOperations  int  `json:"maxOperations"`
	MaxPayloadSize int  `json:"maxPayloadSize"`
}

type authScheme struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Primary     bool   `json:"primary"`
}

// serviceProviderConfig answers GET /ServiceProviderConfig (RFC 7643 §5).
func (s *Server) serviceProviderConfig(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	writeJSON(w, http.StatusOK, map[string]any{
		"schemas":          []string{schemaConfig},
		"documentationUri": "https://github.com/tollgate/tollgate/blob/main/docs/scim.md",
		"patch":            supported{true},
		"bulk":             bulkSupport{},
		"filter":           filterSupport{Supported: true, MaxResults: store.MaxPageSize},
		"changePassword":   supported{false},
		"sort":             supported{false},
		"etag":             supported{false},
		"authenticationSchemes": []authScheme{{Type: "oauthbearertoken", Name: "API key",
			Description: "An API key of an administrator of the account, sent as Authorization: Bearer <API key>.", Primary: true}},
		"meta": meta{ResourceType: "ServiceProviderConfig", Location: s.baseURL(r) + "/ServiceProviderConfig"},
	})
	return nil
}

type schemaExtension struct {
	Schema   string `json:"schema"`
	Required bool   `json:"required"`
}

type resourceTypeDoc struct {
	Schemas          []string          `json:"schemas"`
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Endpoint         string            `json:"endpoint"`
	Description      string            `json:"description"`
	Schema           string            `json:"schema"`
	SchemaExtensions []schemaExtension `json:"schemaExtensions,omitempty"`
	Meta             meta              `json:"meta"`
}

func (s *Server) resourceTypeDocs(r *http.Request) []resourceTypeDoc {
	base := s.baseURL(r)
	return []resourceTypeDoc{
		{Schemas: []string{schemaRT}, ID: "User", Name: "User", Endpoint: "/Users", Schema: schemaUser,
			Description: "A member of the account; userName is the user's e-mail address.",
			Meta:        meta{ResourceType: "ResourceType", Location: base + "/ResourceTypes/User"}},
		{Schemas: []string{schemaRT}, ID: "Group", Name: "Group", Endpoint: "/Groups", Schema: schemaGroup,
			Description:      "A group of the account's members; its members get the roles the Tollgate extension grants.",
			SchemaExtensions: []schemaExtension{{Schema: schemaRoles}},
			Meta:             meta{ResourceType: "ResourceType", Location: base + "/ResourceTypes/Group"}},
	}
}

// attribute describes one attribute of a schema (RFC 7643 §7).
type attribute struct {
	Name          string      `json:"name"`
	Type          string      `json:"type"`
	MultiValued   bool        `json:"multiValued"`
	Description   string      `json:"description"`
	Required      bool        `json:"required"`
	CaseExact     bool        `json:"caseExact"`
	Mutability    string      `json:"mutability"`
	Returned      string      `json:"returned"`
	Uniqueness    string      `json:"uniqueness"`
	SubAttributes []attribute `json:"subAttributes,omitempty"`
}

type schemaDoc struct {
	Schemas     []string    `json:"schemas"`
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Attributes  []attribute `json:"attributes"`
	Meta        meta        `json:"meta"`
}

func attr(name, typ, desc string, required bool, mutability, uniqueness string) attribute {
	return attribute{Name: name, Type: typ, Description: desc, Required: required, Mutability: mutability,
		Returned: "default", Uniqueness: uniqueness}
}

func (s *Server) schemaDocs(r *http.Request) []schemaDoc {
	base := s.baseURL(r) + "/Schemas/"
	ref := attr("value", "string", "The id of the resource.", true, "immutable", "none")
	emails := attr("emails", "complex", "The userName, as the primary work address (read-only here).", false, "readOnly", "none")
	emails.MultiValued = true
	emails.SubAttributes = []attribute{attr("value", "string", "The address.", false, "readOnly", "none"),
		attr("type", "string", "work", false, "readOnly", "none"), attr("primary", "boolean", "true", false, "readOnly", "none")}
	groups := attr("groups", "complex", "The account's groups the user is in.", false, "readOnly", "none")
	groups.MultiValued, groups.SubAttributes = true, []attribute{ref}
	members := attr("members", "complex", "The group's members: users of the account.", false, "readWrite", "none")
	members.MultiValued, members.SubAttributes = true, []attribute{ref}
	return []schemaDoc{
		{Schemas: []string{schemaSchema}, ID: schemaUser, Name: "User", Description: "A member of the account.",
			Attributes: []attribute{
				attr("userName", "string", "The user's e-mail address; unique.", true, "readWrite", "server"),
				attr("displayName", "string", "The user's name.", false, "readWrite", "none"),
				attr("active", "boolean", "false deactivates the user in this account only.", false, "readWrite", "none"),
				attr("externalId", "string", "The identity provider's ID of the user.", false, "readWrite", "none"),
				emails, groups,
			}, Meta: meta{ResourceType: "Schema", Location: base + schemaUser}},
		{Schemas: []string{schemaSchema}, ID: schemaGroup, Name: "Group", Description: "A group of the account's members.",
			Attributes: []attribute{
				attr("displayName", "string", "The group's name; unique in the account.", true, "readWrite", "server"),
				attr("externalId", "string", "The identity provider's ID of the group.", false, "readWrite", "none"),
				members,
			}, Meta: meta{ResourceType: "Schema", Location: base + schemaGroup}},
		{Schemas: []string{schemaSchema}, ID: schemaRoles, Name: "TollgateGroupRoles",
			Description: "The roles a group grants its members (docs/scim.md#groups-and-roles).",
			Attributes: []attribute{
				attr("developer", "string", "rw, ro, or empty for none.", false, "readWrite", "none"),
				attr("team", "string", "manager, invite, ro, or empty for none.", false, "readWrite", "none"),
				attr("billing", "boolean", "Billing access.", false, "readWrite", "none"),
				attr("admin", "boolean", "The administrator flag.", false, "readWrite", "none"),
			}, Meta: meta{ResourceType: "Schema", Location: base + schemaRoles}},
	}
}

// docHandlers returns the handlers of a discovery collection (RFC 7644
// §4): the list of docs, and one doc by its id (case-insensitive; 404
// naming what otherwise).
func docHandlers[T any](docs func(*http.Request) []T, id func(*T) string, what string) (list, one handlerFunc) {
	list = func(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
		ds := docs(r)
		items := make([]any, len(ds))
		for i := range ds {
			items[i] = ds[i]
		}
		writeList(w, store.SCIMPage{StartIndex: 1}, len(items), items)
		return nil
	}
	one = func(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
		ds := docs(r)
		for i := range ds {
			if strings.EqualFold(id(&ds[i]), r.PathValue("id")) {
				writeJSON(w, http.StatusOK, ds[i])
				return nil
			}
		}
		return fail(http.StatusNotFound, codes.SCIMNotFound, "There is no %s %q.", what, controlplane.Truncate(r.PathValue("id"), 200))
	}
	return list, one
}
