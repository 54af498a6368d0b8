package scim

import (
	"maps"
	"slices"
	"strings"

	filter "github.com/scim2/filter-parser/v2"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
)

// listFilter reads a list's filter (RFC 7644 §3.4.2.2) into fields: the
// filters identity providers send to find a resource before creating it
// (userName eq "...", externalId eq "...", displayName eq "..."), one
// attribute or several joined with and. attrs maps each supported
// attribute path, lower case ("username", "emails.value"), to where its
// value goes. Anything else is codes.SCIMInvalidFilter.
func listFilter(raw string, attrs map[string]*string) error {
	if strings.TrimSpace(raw) == "" {
		return nil
	}
	e, err := filter.ParseFilter([]byte(raw))
	if err != nil {
		return invalid(codes.SCIMInvalidFilter, "The filter %q cannot be parsed (RFC 7644 §3.4.2.2).", controlplane.Truncate(raw, 200))
	}
	return collectEq(raw, e, attrs)
}

func collectEq(raw string, e filter.Expression, attrs map[string]*string) error {
	switch x := e.(type) {
	case *filter.AttributeExpression:
		name := strings.ToLower(x.AttributePath.AttributeName)
		if sub := x.AttributePath.SubAttributeName(); sub != "" {
			name += "." + strings.ToLower(sub)
		}
		dst, ok := attrs[name]
		v, isString := x.CompareValue.(string)
		if ok && isString && x.Operator == filter.EQ && (*dst == "" || *dst == v) {
			*dst = v
			return nil
		}
	case *filter.LogicalExpression:
		if x.Operator == filter.AND {
			if err := collectEq(raw, x.Left, attrs); err != nil {
				return err
			}
			return collectEq(raw, x.Right, attrs)
		}
	}
	names := slices.Sorted(maps.Keys(attrs))
	return invalid(codes.SCIMInvalidFilter, "The filter %q is not supported: use <attribute> eq \"<value>\" with an attribute of %s, joined with and.",
		controlplane.Truncate(raw, 200), strings.Join(names, ", "))
}
