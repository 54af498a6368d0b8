package scim

import (
	"encoding/json"
	"slices"
	"strings"

	filter "github.com/scim2/filter-parser/v2"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
)

// The rules of RFC 7644 §3.5.2 (PATCH), as identity providers send them:
//   - op is add, replace or remove in any case (Entra ID sends "Replace",
//     "Add", "Remove").
//   - Without a path, add and replace take an object whose keys are
//     attribute paths (Okta: {"op":"replace","value":{"active":false}});
//     the whole Tollgate extension may be one key holding an object.
//   - A path names an attribute, optionally with a value filter and
//     sub-attribute: members[value eq "usr_..."], emails[type eq
//     "work"].value, urn:...:User:active. Attribute names match without
//     regard to case (RFC 7643 §2.1).
//   - Booleans may come as strings, "True" and "False" (Entra ID).
//   - Attributes of the core schemas that Tollgate does not keep (name,
//     title, phoneNumbers, emails, ...) and attributes of other
//     extensions (the enterprise User) are accepted and ignored; unknown
//     attribute names are refused (invalidPath).
// A PUT body is applied as one path-less replace, so an attribute absent
// from it keeps its value (docs/scim.md#what-is-mapped).

// patchRequest is a PATCH body (RFC 7644 §3.5.2).
type patchRequest struct {
	Schemas    []string  `json:"schemas"`
	Operations []patchOp `json:"Operations"`
}

// patchOp is one operation of a PATCH.
type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

// setter applies one operation (add, replace or remove, lower case) to one
// attribute of the resource being changed.
type setter func(kind string, p filter.Path, v json.RawMessage) error

// applyOps applies a PATCH's operations in order; core is the resource's
// core schema URN.
func applyOps(ops []patchOp, core string, set setter) error {
	if len(ops) == 0 {
		return invalid(codes.SCIMInvalidSyntax, "The PATCH has no Operations.")
	}
	for _, o := range ops {
		kind := strings.ToLower(o.Op)
		switch kind {
		case "add", "replace", "remove":
		default:
			return invalid(codes.SCIMInvalidPath, "The PATCH operation %q is not add, replace or remove.", controlplane.Truncate(o.Op, 40))
		}
		var err error
		switch {
		case o.Path == "" && kind == "remove":
			err = invalid(codes.SCIMInvalidPath, "A remove operation needs a path.")
		case o.Path == "":
			err = applyObject(kind, o.Value, core, set)
		default:
			err = applyPath(kind, o.Path, o.Value, core, set)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// applyObject applies an object of attribute paths and values: a
// path-less add or replace, or a PUT body.
func applyObject(kind string, v json.RawMessage, core string, set setter) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil || obj == nil {
		return invalid(codes.SCIMInvalidValue, "An operation without a path needs an object of attributes as its value.")
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		val := obj[k]
		switch {
		case strings.EqualFold(k, "schemas"), strings.EqualFold(k, "id"), strings.EqualFold(k, "meta"):
			continue // read-only, or the request's own framing
		case strings.EqualFold(k, schemaRoles):
			if err := applyExtension(kind, val, set); err != nil {
				return err
			}
			continue
		case hasPrefixFold(k, "urn:") && !hasPrefixFold(k, core+":") && !hasPrefixFold(k, schemaRoles+":"):
			continue // another extension's attributes: not kept
		}
		if err := applyPath(kind, k, val, core, set); err != nil {
			return err
		}
	}
	return nil
}

// applyExtension applies the Tollgate Group extension given as one object.
func applyExtension(kind string, v json.RawMessage, set setter) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil || obj == nil {
		return invalid(codes.SCIMGroupRoles, "%s must be an object of developer, team, billing and admin.", schemaRoles)
	}
	for k, val := range obj {
		if err := applyPath(kind, schemaRoles+":"+k, val, "", set); err != nil {
			return err
		}
	}
	return nil
}

// applyPath parses one attribute path and applies the operation to it.
func applyPath(kind, raw string, v json.RawMessage, core string, set setter) error {
	if strings.EqualFold(raw, schemaRoles) {
		return applyExtension(kind, v, set)
	}
	p, err := filter.ParsePath([]byte(raw))
	if err != nil {
		return invalid(codes.SCIMInvalidPath, "The path %q cannot be parsed (RFC 7644 §3.5.2).", controlplane.Truncate(raw, 200))
	}
	switch uri := p.AttributePath.URI(); {
	case strings.EqualFold(uri, schemaRoles): // the setter decides
	case uri == "" || strings.EqualFold(uri, core):
		p.AttributePath.URIPrefix = nil
	default:
		return nil // another extension's attribute: not kept
	}
	return set(kind, p, v)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// ignoredUserAttrs are User attributes of RFC 7643 §4.1 that Tollgate
// accepts and does not keep.
var ignoredUserAttrs = []string{"name", "nickname", "profileurl", "title", "usertype", "preferredlanguage", "locale",
	"timezone", "password", "emails", "phonenumbers", "ims", "photos", "addresses", "entitlements", "roles",
	"x509certificates", "groups", "id", "meta", "schemas"}

// userSetter changes u; a name object (name.formatted, or givenName and
// familyName) is kept in nameHint, the display name of a user created
// without displayName.
func userSetter(u *store.SCIMUserInput, nameHint *string) setter {
	return func(kind string, p filter.Path, v json.RawMessage) error {
		attr := p.AttributePath.AttributeName
		if p.AttributePath.URI() != "" {
			return invalid(codes.SCIMInvalidPath, "%s is not an attribute of a User.", p.AttributePath.String())
		}
		remove := kind == "remove"
		var err error
		switch strings.ToLower(attr) {
		case "active":
			if remove {
				return invalid(codes.SCIMInvalidValue, "active cannot be removed: replace it with false to deactivate the user.")
			}
			u.Active, err = boolValue(attr, v)
		case "username":
			if remove {
				return invalid(codes.SCIMInvalidValue, "userName cannot be removed.")
			}
			u.Email, err = stringValue(attr, v)
		case "displayname":
			u.DisplayName, err = optString(remove, attr, v)
		case "externalid":
			u.ExternalID, err = optString(remove, attr, v)
		default:
			if !slices.Contains(ignoredUserAttrs, strings.ToLower(attr)) {
				return invalid(codes.SCIMInvalidPath, "%s is not an attribute of a User.", controlplane.Truncate(attr, 100))
			}
			if strings.EqualFold(attr, "name") && p.AttributePath.SubAttribute == nil && !remove {
				var n struct{ Formatted, GivenName, FamilyName string }
				if json.Unmarshal(v, &n) == nil {
					*nameHint = strings.TrimSpace(n.Formatted)
					if *nameHint == "" {
						*nameHint = strings.TrimSpace(n.GivenName + " " + n.FamilyName)
					}
				}
			}
		}
		return err
	}
}

// groupSetter changes g.
func groupSetter(g *store.SCIMGroup) setter {
	return func(kind string, p filter.Path, v json.RawMessage) error {
		attr := p.AttributePath.AttributeName
		if strings.EqualFold(p.AttributePath.URI(), schemaRoles) {
			return setRole(&g.Roles, kind, attr, v)
		}
		if p.AttributePath.URI() != "" {
			return invalid(codes.SCIMInvalidPath, "%s is not an attribute of a Group.", p.AttributePath.String())
		}
		var err error
		switch strings.ToLower(attr) {
		case "displayname":
			if kind == "remove" {
				return invalid(codes.SCIMInvalidValue, "displayName cannot be removed.")
			}
			g.DisplayName, err = stringValue(attr, v)
		case "externalid":
			g.ExternalID, err = optString(kind == "remove", attr, v)
		case "members":
			err = setMembers(g, kind, p, v)
		case "id", "meta", "schemas":
		default:
			err = invalid(codes.SCIMInvalidPath, "%s is not an attribute of a Group.", controlplane.Truncate(attr, 100))
		}
		return err
	}
}

// setRole changes one attribute of the Tollgate Group extension.
func setRole(r *store.SCIMGroupRoles, kind, attr string, v json.RawMessage) error {
	remove := kind == "remove"
	var err error
	var s string
	switch strings.ToLower(attr) {
	case "developer":
		s, err = optString(remove, attr, v)
		r.Developer = store.DeveloperRole(strings.ToLower(s))
	case "team":
		s, err = optString(remove, attr, v)
		r.Team = store.TeamRole(strings.ToLower(s))
	case "billing":
		r.Billing, err = optBool(remove, attr, v)
	case "admin":
		r.Admin, err = optBool(remove, attr, v)
	default:
		err = invalid(codes.SCIMGroupRoles, "%s has developer, team, billing and admin; not %q.", schemaRoles, controlplane.Truncate(attr, 100))
	}
	return err
}

// setMembers applies an operation on a group's members: add (union),
// replace (the given set), remove (those given by a value filter or in
// the value; all without either).
func setMembers(g *store.SCIMGroup, kind string, p filter.Path, v json.RawMessage) error {
	if p.ValueExpression != nil {
		if kind != "remove" {
			return invalid(codes.SCIMInvalidPath, "A members path with a filter is supported for remove only; add members with a value list.")
		}
		ids, err := memberFilter(p.ValueExpression)
		if err != nil {
			return err
		}
		g.Members = slices.DeleteFunc(g.Members, func(id string) bool { return slices.Contains(ids, id) })
		return nil
	}
	if kind == "remove" && isNull(v) {
		g.Members = nil
		return nil
	}
	ids, err := memberValues(v)
	if err != nil {
		return err
	}
	switch kind {
	case "add":
		g.Members = append(g.Members, ids...)
	case "replace":
		g.Members = ids
	case "remove":
		g.Members = slices.DeleteFunc(g.Members, func(id string) bool { return slices.Contains(ids, id) })
	}
	return nil
}

// memberValues reads members given as [{"value": "usr_..."}, ...] or one
// such object.
func memberValues(v json.RawMessage) ([]string, error) {
	var list []struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(v, &list); err != nil {
		var one struct {
			Value string `json:"value"`
		}
		if err := json.Unmarshal(v, &one); err != nil || one.Value == "" {
			return nil, invalid(codes.SCIMInvalidValue, `members must be a list of {"value": "<user id>"}.`)
		}
		return []string{one.Value}, nil
	}
	ids := make([]string, 0, len(list))
	for _, m := range list {
		if m.Value == "" {
			return nil, invalid(codes.SCIMInvalidValue, `Every member needs a value: the user's id.`)
		}
		ids = append(ids, m.Value)
	}
	return ids, nil
}

// memberFilter reads the user IDs of a members value filter: value eq
// "...", possibly several joined with or.
func memberFilter(e filter.Expression) ([]string, error) {
	switch x := e.(type) {
	case *filter.AttributeExpression:
		if id, ok := x.CompareValue.(string); ok && x.Operator == filter.EQ && strings.EqualFold(x.AttributePath.AttributeName, "value") {
			return []string{id}, nil
		}
	case *filter.LogicalExpression:
		if x.Operator == filter.OR {
			l, err := memberFilter(x.Left)
			if err != nil {
				return nil, err
			}
			r, err := memberFilter(x.Right)
			return append(l, r...), err
		}
	}
	return nil, invalid(codes.SCIMInvalidPath, `A members filter must be value eq "<user id>" (or several joined with or).`)
}

func isNull(v json.RawMessage) bool {
	s := strings.TrimSpace(string(v))
	return s == "" || s == "null" || s == "[]"
}

// boolValue reads a boolean, also given as a string "true" or "false" in
// any case (Entra ID sends "True" and "False").
func boolValue(attr string, v json.RawMessage) (bool, error) {
	var b bool
	if json.Unmarshal(v, &b) == nil {
		return b, nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, invalid(codes.SCIMInvalidValue, "%s must be a boolean (true or false), not %s.", attr, controlplane.Truncate(string(v), 40))
}

// optBool is boolValue, false for a remove.
func optBool(remove bool, attr string, v json.RawMessage) (bool, error) {
	if remove {
		return false, nil
	}
	return boolValue(attr, v)
}

// stringValue reads a string; null is "".
func stringValue(attr string, v json.RawMessage) (string, error) {
	var s *string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", invalid(codes.SCIMInvalidValue, "%s must be a string, not %s.", attr, controlplane.Truncate(string(v), 40))
	}
	if s == nil {
		return "", nil
	}
	return *s, nil
}

// optString is stringValue, "" for a remove.
func optString(remove bool, attr string, v json.RawMessage) (string, error) {
	if remove {
		return "", nil
	}
	return stringValue(attr, v)
}
