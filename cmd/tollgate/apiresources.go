package main

import "github.com/tollgate/tollgate/regions"

// fieldKind is the JSON shape of a body field set by a flag.
type fieldKind int

const (
	fieldString fieldKind = iota // --flag VALUE → "value"
	fieldBool                    // --flag[=false] → true/false
	fieldList                    // --flag A --flag B → ["A","B"]
	fieldHSTS                    // --flag "max-age=N; includeSubDomains" → {"max_age": N, ...}; --flag none → null
	fieldNull                    // --flag → null (a boolean flag that clears the field)
)

// apiField is a body field of create or update that has its own flag. A
// key "object.field" sets a field of an object in the body.
type apiField struct {
	flag, key string
	kind      fieldKind
	usage     string
	create    bool // settable at creation
	update    bool // settable by update
}

// apiResource is one collection of the REST API as `tollgate api` names it.
type apiResource struct {
	name    string   // CLI name, with dashes: bot-users
	path    string   // collection path: /bot_users
	listKey string   // key of the items in a list response
	short   string   // one-line help
	verbs   []string // supported verbs, in help order
	fields  []apiField
	// actions are POST /<path>/{id}/<action> commands (tunnel session
	// stop and restart), answered with 204.
	actions []string
}

var (
	crud     = []string{"create", "list", "get", "update", "delete"}
	readOnly = []string{"list", "get"}
)

// Common fields.
var (
	fDescription   = apiField{flag: "description", key: "description", usage: "human-readable description (≤255 bytes)", create: true, update: true}
	fMetadata      = apiField{flag: "metadata", key: "metadata", usage: "arbitrary user data (≤4096 bytes)", create: true, update: true}
	fOwnerID       = apiField{flag: "owner-id", key: "owner_id", usage: "ID of the user or bot user that owns it (default: the API key's owner)", create: true}
	fDeveloperRole = apiField{flag: "developer", key: "developer", usage: "developer role: rw or ro", create: true, update: true}
	fTeamRole      = apiField{flag: "team", key: "team", usage: "team role: manager, invite or ro", create: true, update: true}
	fBilling       = apiField{flag: "billing", key: "billing", kind: fieldBool, usage: "may manage billing", create: true, update: true}
	fAdmin         = apiField{flag: "admin", key: "admin", kind: fieldBool, usage: "account administrator", create: true, update: true}
	fACL           = apiField{flag: "acl", key: "acl", kind: fieldList, usage: "bind rule: '*' or bind:<domain|*.domain|host:port> (repeatable)", create: true, update: true}
)

// apiResources are the resources of `tollgate api`, as the control plane
// serves them (docs/api-compatibility.md#resources).
var apiResources = []apiResource{
	{name: "bot-users", path: "/bot_users", listKey: "bot_users", short: "Bot users: principals for automation that own credentials", verbs: crud,
		fields: []apiField{
			{flag: "name", key: "name", usage: "name of the bot user", create: true, update: true},
			{flag: "active", key: "active", kind: fieldBool, usage: "whether its credentials work (--active=false deactivates)", create: true, update: true},
		}},
	{name: "service-users", path: "/service_users", listKey: "service_users", short: "Service users: the newer name of bot users", verbs: crud,
		fields: []apiField{
			{flag: "name", key: "name", usage: "name of the service user", create: true, update: true},
			{flag: "active", key: "active", kind: fieldBool, usage: "whether its credentials work (--active=false deactivates)", create: true, update: true},
		}},
	{name: "api-keys", path: "/api_keys", listKey: "keys", short: "API keys for the REST API (the token is shown once, at creation)", verbs: crud,
		fields: []apiField{fDescription, fMetadata, fOwnerID}},
	{name: "credentials", path: "/credentials", listKey: "credentials", short: "Authtokens that agents connect with (the token is shown once, at creation)", verbs: crud,
		fields: []apiField{fDescription, fMetadata, fACL, fOwnerID}},
	{name: "ssh-credentials", path: "/ssh_credentials", listKey: "ssh_credentials", short: "SSH public keys that start SSH reverse tunnels", verbs: crud,
		fields: []apiField{fDescription, fMetadata, fACL, fOwnerID,
			{flag: "public-key", key: "public_key", usage: "OpenSSH authorized_keys line (ssh-ed25519 AAAA... comment)", create: true},
		}},
	{name: "reserved-domains", path: "/reserved_domains", listKey: "reserved_domains", short: "Reserved domains that agents may bind", verbs: crud,
		fields: []apiField{fDescription, fMetadata,
			{flag: "domain", key: "domain", usage: "the domain to reserve (app.example.com or *.example.com)", create: true},
			{flag: "region", key: "region", usage: "region the domain is pinned to: " + regions.CodeList() + " (fixed once reserved)", create: true},
			{flag: "certificate-authority", key: "certificate_management_policy.authority", usage: `certificate_management_policy: the authority the edges obtain the domain's certificate from, "letsencrypt" (the default, and the only one: the edges' --acme-ca)`, create: true, update: true},
			{flag: "private-key-type", key: "certificate_management_policy.private_key_type", usage: `certificate_management_policy: the key type of the domain's certificate, "rsa" (the default) or "ecdsa"`, create: true, update: true},
			{flag: "no-certificate", key: "certificate_management_policy", kind: fieldNull, usage: "certificate_management_policy null: the edges obtain no certificate for the domain (without it, and without --certificate-authority or --private-key-type, create asks for a Let's Encrypt RSA certificate)", create: true, update: true},
			{flag: "min-tls-version", key: "min_tls_version", usage: "minimum TLS version of the domain's endpoints: 1.0, 1.1, 1.2 or 1.3 (\"\" = the edge's default)", create: true, update: true},
			{flag: "hsts", key: "hsts", kind: fieldHSTS, usage: `Strict-Transport-Security the edges add to the domain's HTTPS responses, "max-age=SECONDS[; includeSubDomains][; preload]", winning over the endpoint's and the upstream's; "none" removes it`, create: true, update: true},
		}},
	{name: "reserved-addrs", path: "/reserved_addrs", listKey: "reserved_addrs", short: "Reserved TCP addresses that agents may bind", verbs: crud,
		fields: []apiField{fDescription, fMetadata,
			{flag: "addr", key: "addr", usage: "the address to reserve, HOST:PORT (default: one is assigned)", create: true},
			{flag: "region", key: "region", usage: "region the address is pinned to: " + regions.CodeList(), create: true},
		}},
	{name: "ip-policies", path: "/ip_policies", listKey: "ip_policies", short: "IP policies: named groups of allow/deny CIDR rules", verbs: crud,
		fields: []apiField{fDescription, fMetadata}},
	{name: "ip-policy-rules", path: "/ip_policy_rules", listKey: "ip_policy_rules", short: "IP policy rules: one CIDR with allow or deny", verbs: crud,
		fields: []apiField{fDescription, fMetadata,
			{flag: "cidr", key: "cidr", usage: "the network, as its lowest address (10.0.0.0/8, 2001:db8::/32)", create: true, update: true},
			{flag: "action", key: "action", usage: "allow or deny", create: true, update: true},
			{flag: "ip-policy-id", key: "ip_policy_id", usage: "ID of the IP policy the rule belongs to", create: true},
		}},
	{name: "ip-restrictions", path: "/ip_restrictions", listKey: "ip_restrictions", short: "IP restrictions: which IP policies guard the dashboard, the API, agents or endpoints", verbs: crud,
		fields: []apiField{fDescription, fMetadata,
			{flag: "type", key: "type", usage: "what it guards: dashboard, api, agent or endpoints", create: true},
			{flag: "ip-policy-id", key: "ip_policy_ids", kind: fieldList, usage: "ID of an IP policy to enforce (repeatable)", create: true, update: true},
			{flag: "enforced", key: "enforced", kind: fieldBool, usage: "refuse traffic (true) or only warn (false)", create: true, update: true},
		}},
	{name: "tunnel-sessions", path: "/tunnel_sessions", listKey: "tunnel_sessions", short: "Online agent sessions", verbs: readOnly,
		actions: []string{"stop", "restart"}},
	{name: "endpoints", path: "/endpoints", listKey: "endpoints", short: "Online endpoints", verbs: readOnly},
	{name: "users", path: "/users", listKey: "users", short: "Users of the account and their roles (add users with invitations)", verbs: []string{"list", "get", "update", "delete"},
		fields: []apiField{fDeveloperRole, fTeamRole, fBilling, fAdmin}},
	{name: "invitations", path: "/invitations", listKey: "invitations", short: "Invitations of users to the account, with the roles they get", verbs: []string{"create", "list", "get", "delete"},
		fields: []apiField{
			{flag: "email", key: "email", usage: "email address of the user to invite", create: true},
			fDeveloperRole, fTeamRole, fBilling, fAdmin,
		}},
	{name: "audit-events", path: "/audit_events", listKey: "audit_events", short: "Audit events: who changed what, newest first", verbs: readOnly},
}
