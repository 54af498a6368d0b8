package events

import (
	"slices"
	"strings"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/traffic"
)

// TypeInfo describes one event type a source may select.
type TypeInfo struct {
	Type        string `json:"type"`        // "<object>_<verb>.v0"
	Description string `json:"description"` // what happened
}

// TestEventType is the type of the synthetic event that "send test event"
// delivers. No source selects it.
const TestEventType = "test_event.v0"

// auditKinds are the objects whose changes the control plane records, with
// the verbs it records for each (docs/events.md#event-types).
var auditKinds = []struct {
	kind, what string
	verbs      []string
}{
	{"account", "an account", []string{"created", "updated"}},
	{"api_key", "an API key", []string{"created", "updated", "deleted"}},
	{"bot_user", "a bot user", []string{"created", "updated", "deleted"}},
	{"account_domain", "an email domain claimed by the account", []string{"created", "verified", "deleted"}},
	{"credential", "an authtoken", []string{"created", "updated", "deleted"}},
	{"dashboard_session", "a dashboard sign-in session", []string{"created", "deleted"}},
	{"event_destination", "an event destination", []string{"created", "updated", "deleted"}},
	{"event_source", "a source of an event subscription", []string{"created", "updated", "deleted"}},
	{"event_subscription", "an event subscription", []string{"created", "updated", "deleted"}},
	{"identity_provider", "a SAML or OIDC identity provider of the account", []string{"created", "updated", "deleted"}},
	{"invitation", "an invitation to the account", []string{"created", "deleted", "accepted"}},
	{"ip_policy", "an IP policy", []string{"created", "updated", "deleted"}},
	{"ip_policy_rule", "an IP policy rule", []string{"created", "updated", "deleted"}},
	{"ip_restriction", "an IP restriction", []string{"created", "updated", "deleted"}},
	{"membership", "a user's membership and roles", []string{"created", "updated", "deleted"}},
	{"password_reset", "a one-time password reset link", []string{"created", "used"}},
	{"reserved_addr", "a reserved TCP address", []string{"created", "updated", "deleted"}},
	{"reserved_domain", "a reserved domain", []string{"created", "updated", "deleted"}},
	{"scim_group", "a SCIM group", []string{"created", "updated", "deleted", "members_changed"}},
	{"sso_settings", "the account's single sign-on settings", []string{"updated"}},
	{"ssh_credential", "an SSH public key credential", []string{"created", "updated", "deleted"}},
	{"tunnel_session", "an agent session, by an operator", []string{"stopped", "restarted"}},
	{"user", "a user", []string{"created", "updated", "deleted"}},
	{"user_password", "a user's dashboard password", []string{"set"}},
	{"user_totp", "a user's authenticator-app (TOTP) enrollment", []string{"started", "confirmed", "deleted"}},
}

var types = func() []TypeInfo {
	var out []TypeInfo
	for _, k := range auditKinds {
		for _, v := range k.verbs {
			out = append(out, TypeInfo{Type: k.kind + "_" + v + ".v0", Description: strings.ToUpper(k.what[:1]) + k.what[1:] + " was " + v + "."})
		}
	}
	out = append(out,
		TypeInfo{Type: traffic.HTTPRequestComplete, Description: "An edge finished an HTTP request to an endpoint (traffic)."},
		TypeInfo{Type: traffic.TCPConnectionClosed, Description: "A TCP or TLS endpoint connection at an edge closed (traffic)."})
	slices.SortFunc(out, func(a, b TypeInfo) int { return strings.Compare(a.Type, b.Type) })
	return out
}()

// TrafficTypes are the event types edges produce (docs/events.md#traffic-events).
var TrafficTypes = []string{traffic.HTTPRequestComplete, traffic.TCPConnectionClosed}

// IsTrafficType reports whether typ is one of TrafficTypes.
func IsTrafficType(typ string) bool { return slices.Contains(TrafficTypes, typ) }

// Types returns every event type a source may select, sorted. Callers must
// not modify the result.
func Types() []TypeInfo { return types }

// CheckType returns a *codes.Error (codes.EventTypeInvalid) unless typ is
// one of Types.
func CheckType(typ string) error {
	if _, ok := slices.BinarySearchFunc(types, typ, func(t TypeInfo, s string) int { return strings.Compare(t.Type, s) }); ok {
		return nil
	}
	if len(typ) > 80 {
		typ = typ[:80] + "…"
	}
	return codes.NewError(codes.EventTypeInvalid, "%q is not an event type. GET /event_types lists them, e.g. api_key_created.v0.", typ)
}
