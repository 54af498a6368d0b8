package dashboard

// The dashboard's pages, grouped by concept. Each group is a view of the
// Server (its store, Core, templates and session handling) holding the
// handlers of one concept; Routes registers them.
type (
	// identityPages: people signing in and managing themselves — password
	// and TOTP sign-in, sign-up, invitations, reset links, the profile and
	// the account switcher (docs/dashboard-sign-in.md).
	identityPages struct{ *Server }
	// ssoPages: single sign-on — SAML and OIDC flows, the chooser and the
	// administrators' identity-provider and domain pages (docs/sso.md).
	ssoPages struct{ *Server }
	// eventPages: event destinations, subscriptions and their sources.
	eventPages struct{ *Server }
	// managePages: what the API manages for an account — IP policies and
	// restrictions, reservations, members, bot credentials, SSH keys,
	// agent sessions and the audit log.
	managePages struct{ *Server }
)
