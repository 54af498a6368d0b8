package scim

import (
	"net/http"
	"time"

	"github.com/tollgate/tollgate/controlplane/store"
)

// Schema and message URNs (RFC 7643 §8.7, RFC 7644 §3.1) and Tollgate's
// Group extension, which holds the roles a group grants.
const (
	schemaUser   = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaGroup  = "urn:ietf:params:scim:schemas:core:2.0:Group"
	schemaRoles  = "urn:tollgate:params:scim:schemas:extension:2.0:Group"
	schemaList   = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	schemaPatch  = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	schemaError  = "urn:ietf:params:scim:api:messages:2.0:Error"
	schemaConfig = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	schemaRT     = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	schemaSchema = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

// meta is a resource's meta attribute (RFC 7643 §3.1).
type meta struct {
	ResourceType string `json:"resourceType"`
	Created      string `json:"created,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
	Location     string `json:"location"`
}

// email is one value of a User's emails: the userName, as the primary
// work address.
type email struct {
	Value   string `json:"value"`
	Type    string `json:"type"`
	Primary bool   `json:"primary"`
}

// ref is a reference to a resource: a Group's member or a User's group.
type ref struct {
	Value   string `json:"value"`
	Ref     string `json:"$ref,omitempty"`
	Display string `json:"display,omitempty"`
}

// userResource is a User as SCIM shows it.
type userResource struct {
	Schemas     []string `json:"schemas"`
	ID          string   `json:"id"`
	ExternalID  string   `json:"externalId,omitempty"`
	UserName    string   `json:"userName"`
	DisplayName string   `json:"displayName,omitempty"`
	Active      bool     `json:"active"`
	Emails      []email  `json:"emails"`
	Groups      []ref    `json:"groups,omitempty"`
	Meta        meta     `json:"meta"`
}

// groupRoles is the Tollgate Group extension: the roles a group grants
// (docs/scim.md#groups-and-roles). Empty developer or team grants nothing
// of that dimension.
type groupRoles struct {
	Developer string `json:"developer"`
	Team      string `json:"team"`
	Billing   bool   `json:"billing"`
	Admin     bool   `json:"admin"`
}

// groupResource is a Group as SCIM shows it.
type groupResource struct {
	Schemas     []string    `json:"schemas"`
	ID          string      `json:"id"`
	ExternalID  string      `json:"externalId,omitempty"`
	DisplayName string      `json:"displayName"`
	Members     []ref       `json:"members,omitempty"`
	Roles       *groupRoles `json:"urn:tollgate:params:scim:schemas:extension:2.0:Group,omitempty"`
	Meta        meta        `json:"meta"`
}

// listResponse is a page of resources (RFC 7644 §3.4.2).
type listResponse struct {
	Schemas      []string `json:"schemas"`
	TotalResults int      `json:"totalResults"`
	StartIndex   int      `json:"startIndex"`
	ItemsPerPage int      `json:"itemsPerPage"`
	Resources    []any    `json:"Resources"`
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// userOut renders a member as a User.
func (s *Server) userOut(r *http.Request, u *store.SCIMUser) userResource {
	base := s.baseURL(r)
	out := userResource{
		Schemas: []string{schemaUser}, ID: u.User.ID, ExternalID: u.ExternalID, UserName: u.User.Email,
		DisplayName: u.User.Name, Active: u.Active,
		Emails: []email{{Value: u.User.Email, Type: "work", Primary: true}},
		Meta: meta{ResourceType: "User", Created: stamp(u.Roles.CreatedAt), LastModified: stamp(u.Roles.CreatedAt),
			Location: base + "/Users/" + u.User.ID},
	}
	for _, g := range u.Groups {
		out.Groups = append(out.Groups, ref{Value: g, Ref: base + "/Groups/" + g})
	}
	return out
}

// groupOut renders a group; withMembers false leaves members out
// (excludedAttributes=members, as Entra ID asks).
func (s *Server) groupOut(r *http.Request, g *store.SCIMGroup, withMembers bool) groupResource {
	base := s.baseURL(r)
	out := groupResource{
		Schemas: []string{schemaGroup, schemaRoles}, ID: g.ID, ExternalID: g.ExternalID, DisplayName: g.DisplayName,
		Roles: &groupRoles{Developer: string(g.Roles.Developer), Team: string(g.Roles.Team), Billing: g.Roles.Billing, Admin: g.Roles.Admin},
		Meta: meta{ResourceType: "Group", Created: stamp(g.CreatedAt), LastModified: stamp(g.CreatedAt),
			Location: base + "/Groups/" + g.ID},
	}
	if withMembers {
		out.Members = []ref{}
		for _, u := range g.Members {
			out.Members = append(out.Members, ref{Value: u, Ref: base + "/Users/" + u})
		}
	}
	return out
}

// writeList writes a page of resources.
func writeList(w http.ResponseWriter, p store.SCIMPage, total int, items []any) {
	writeJSON(w, http.StatusOK, listResponse{Schemas: []string{schemaList}, TotalResults: total,
		StartIndex: p.StartIndex, ItemsPerPage: len(items), Resources: items})
}
