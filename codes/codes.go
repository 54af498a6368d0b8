package codes

import "fmt"

// Code is a stable, documented error code shown to users: "TG_<n>". Where
// the condition is the same as one of the hosted platform's, the number is
// the same (docs/error-codes.md#numbering), so people who know
// those codes recognise ours. Codes never change meaning once published.
type Code string

// Agent session and authentication codes.
const (
	AuthtokenMissing   Code = "TG_4018" // no authtoken presented
	AuthtokenMalformed Code = "TG_105"  // not of the form <id>_<secret>
	AuthtokenInvalid   Code = "TG_107"  // well-formed, but no such credential or wrong secret
	CredentialRevoked  Code = "TG_300"  // the credential was deleted or its owner deactivated
	AuthPayload        Code = "TG_109"  // the Auth message could not be decoded
	HeartbeatInterval  Code = "TG_111"  // heartbeat interval below the minimum
	HeartbeatTolerance Code = "TG_112"  // heartbeat tolerance below the minimum
	AgentIPRestricted  Code = "TG_115"  // agent IP restriction refused the source address
	NotAuthenticated   Code = "TG_150"  // an RPC other than Auth before a successful Auth
	SessionStopped     Code = "TG_151"  // the edge closed the session (shutdown, API stop)
)

// Edge availability codes (issue 12): an edge that cannot take an agent
// or a client now, for a reason that clears by itself. Agents retry them
// (tunnel.RemoteError.Permanent is false).
const (
	EdgeNotReady   Code = "TG_2740" // the edge has no snapshot from the control plane yet, so it cannot check credentials
	EdgeOverloaded Code = "TG_2741" // the edge's memory guard refuses new connections, agent sessions and HTTP requests
	// edge availability: add new codes above this line (TG_2740–TG_2759).
)

// Bind codes.
const (
	BindProto          Code = "TG_400"  // unknown or unsupported endpoint protocol
	BindURL            Code = "TG_401"  // the requested URL is malformed
	BindOutsideBase    Code = "TG_402"  // the hostname is not under the edge's base domain and not reserved
	BindOption         Code = "TG_403"  // an option this edge does not support and must not ignore
	BindMinTLS         Code = "TG_404"  // minimum TLS version unknown or below the edge floor
	BindACL            Code = "TG_619"  // the credential's bind ACL does not allow this endpoint
	BindTaken          Code = "TG_334"  // the endpoint is bound by another session
	BindReservedOther  Code = "TG_320"  // the name is reserved by another account
	BindRegion         Code = "TG_322"  // the reservation is pinned to another region
	BindAddrRegion     Code = "TG_311"  // the reserved TCP address belongs to another region
	BindNotReserved    Code = "TG_7117" // the name or address must be reserved first
	BindPortsExhausted Code = "TG_405"  // no free port in the edge's TCP port range
	BindDenyOnly       Code = "TG_393"  // deny CIDRs without any allow CIDR
	BindHSTS           Code = "TG_406"  // the HSTS option is not a valid Strict-Transport-Security value within the limits
	// Wildcard endpoints (docs/wildcard-endpoints.md): add new bind codes
	// in TG_407–TG_419.
	BindWildcardUnreserved Code = "TG_407" // a wildcard endpoint whose wildcard domain this account has not reserved
	BindWildcardBase       Code = "TG_408" // a wildcard of the edge's base domain itself
)

// Public traffic codes, shown on edge error pages and in logs.
const (
	EndpointNotFound Code = "TG_3200" // no endpoint is online at this host
	AgentUnreachable Code = "TG_3201" // the endpoint's agent session went away
	UpstreamFailed   Code = "TG_8012" // the agent could not reach the upstream
	Misdirected      Code = "TG_3220" // SNI, Host and :authority disagree
	BadRequest       Code = "TG_3221" // malformed or ambiguous HTTP request
	IPDenied         Code = "TG_3205" // the client address is refused by IP policy
	TLSVersion       Code = "TG_3206" // the client's TLS version is below the endpoint minimum
)

// API and control-plane codes.
const (
	APIAuthMissing   Code = "TG_200"
	APIAuthParse     Code = "TG_201"
	APIAuthMalformed Code = "TG_202"
	APIAuthInvalid   Code = "TG_203"
	APIAuthtoken     Code = "TG_206" // an authtoken was presented to the API
	APIKeyID         Code = "TG_208" // an API key ID was presented instead of the token
	APIRateLimited   Code = "TG_226"
	APIPageSize      Code = "TG_233"
	APINotFound      Code = "TG_250"
	Internal         Code = "TG_500"
)

// Startup and configuration codes for the binaries.
const (
	ListenFailed    Code = "TG_9001" // a listener could not bind its address
	ConfigInvalid   Code = "TG_9002" // a flag or config file value is invalid
	CAUnreadable    Code = "TG_9003" // a CA file could not be read or parsed
	StoreFailed     Code = "TG_9004" // the store could not be opened or migrated
	EdgeUnreachable Code = "TG_9005" // the agent could not reach the edge
)

// Agent codes (issue 16): the edge's certificate, the URL scheme, and the
// agent's local API and inspector (docs/inspect.md). Block TG_9006–TG_9019.
const (
	EdgeCertUnverified Code = "TG_9006" // the agent cannot verify the edge's certificate (pass --root-ca FILE)
	PlainHTTPURL       Code = "TG_9007" // an http:// public URL was asked for; the edge serves HTTP endpoints over HTTPS only
	LocalMethod        Code = "TG_9008" // the local API does not allow this method on this path
	LocalBadRequest    Code = "TG_9009" // a local API request body or parameter is invalid
	InspectOff         Code = "TG_9010" // request inspection is turned off (--inspect=false)
	ReplayTruncated    Code = "TG_9011" // a captured request whose body was truncated cannot be replayed as sent
	ReplayFailed       Code = "TG_9012" // a replayed request got no response from the upstream
	LocalHostRefused   Code = "TG_9013" // the local web UI refused a request for another host name (DNS rebinding guard)
	LocalFormToken     Code = "TG_9014" // a form of the local web UI came without its token
	// add new codes above this line (block TG_9006–TG_9019)
)

// Error is an error that carries a user-facing Code and message, kept apart
// from its Cause, which goes to logs only (the smallstep errs split).
type Error struct {
	Code    Code
	Message string // plain words that say what happened and what to do
	Cause   error  // internal detail; never shown to the remote party
}

// NewError returns an *Error with the given code and message.
func NewError(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithCause returns a copy of e carrying cause for logs.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

// Error returns "<message> [<code>]"; the cause is not included.
func (e *Error) Error() string { return e.Message + " [" + string(e.Code) + "]" }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// REST API request and validation codes (appended by the controlplane
// helper). Numbers below 1000 are the hosted platform's where the condition
// is the same; TG_26xx are Tollgate's own.
const (
	APIAccountSuspended  Code = "TG_205"  // the API key's account is suspended
	APIContentType       Code = "TG_210"  // a body without Content-Type: application/json
	APIBodyNotAllowed    Code = "TG_211"  // a body on a method that takes none
	APIBodyUnreadable    Code = "TG_212"  // the body could not be read, or is too large
	APIBodyInvalid       Code = "TG_213"  // the body is not JSON of the expected shape
	APIUnknownParam      Code = "TG_214"  // an unknown body field or query parameter
	APIVersion           Code = "TG_217"  // an unsupported API version header
	APIMetadataLength    Code = "TG_100"  // metadata longer than 4096 bytes
	ACLInvalid           Code = "TG_600"  // an ACL rule that is not '*' or 'bind:<...>'
	APIDescriptionLength Code = "TG_2600" // description longer than 255 bytes
	APIInvalidID         Code = "TG_2601" // a malformed ID, or an ID of the wrong kind
	APIInvalidParam      Code = "TG_2602" // a field or query parameter with an invalid value
	APIPrincipalInactive Code = "TG_2603" // the API key's owner is deactivated
	APIForbidden         Code = "TG_2604" // the principal's roles do not allow the operation
	APIMethodNotAllowed  Code = "TG_2605" // the resource does not support the HTTP method
	APIConflict          Code = "TG_2606" // the change conflicts with an existing object
)

// Reservation codes of the REST API. Numbers below 2000 are the hosted
// platform's where the condition is the same.
const (
	DomainInvalid          Code = "TG_2607" // a reserved domain that is not a valid DNS name
	AddrInvalid            Code = "TG_2608" // a reserved address that is not host:port
	RegionInvalid          Code = "TG_2609" // a region code that is not us, eu, ap, au, sa, jp or in
	RegionImmutable        Code = "TG_451"  // a reservation's region cannot change
	CertPolicyInvalid      Code = "TG_2610" // certificate_management_policy with an unknown authority or key type
	ReservedByOther        Code = "TG_2611" // the domain or address is reserved by another account
	ReservedAlready        Code = "TG_2612" // the domain or address is already reserved by this account
	CertificateUnsupported Code = "TG_2630" // certificate_id given: uploaded certificates are not supported yet
	AddrRequired           Code = "TG_2631" // addr omitted for a region without a TCP address pool
	AddrPoolExhausted      Code = "TG_2632" // every port of the region's TCP address pool is reserved
	MinTLSVersionInvalid   Code = "TG_2633" // min_tls_version other than 1.0, 1.1, 1.2 or 1.3
	HSTSInvalid            Code = "TG_2634" // hsts: max_age out of 0..2 years, preload without include_subdomains or a year, or a bad shape
	// reservations: add new codes above this line (TG_2630–TG_2649).
)

// IP policy and restriction codes of the REST API.
const (
	IPRuleDuplicate      Code = "TG_1408" // the IP policy already has a rule for this CIDR
	IPRuleCIDRNotNetwork Code = "TG_1409" // the CIDR is not written with its network address
	IPRuleAction         Code = "TG_1422" // an IP policy rule action other than allow or deny
	IPRuleCIDRInvalid    Code = "TG_2613" // the CIDR could not be parsed
	IPRestrictionType    Code = "TG_2614" // an IP restriction type other than dashboard, api, agent, endpoints
	IPPolicyInUse        Code = "TG_2615" // the IP policy is referenced by an IP restriction
	IPPolicyIDs          Code = "TG_2616" // ip_policy_ids empty, or naming a policy not in the account
	IPRulePolicy         Code = "TG_2650" // a rule's ip_policy_id missing, or naming no IP policy of the account
	// ip policies: add new codes above this line (TG_2650–TG_2669).
)

// User, invitation, account and role codes of the REST API.
const (
	LastAdmin         Code = "TG_2619" // the change would leave the account without an administrator
	RoleInvalid       Code = "TG_2620" // a role value outside developer rw|ro, team manager|invite|ro
	InvitationExists  Code = "TG_2621" // the e-mail address is invited or a member already
	InvitationInvalid Code = "TG_2670" // an accept token that names no pending invitation, or whose secret is wrong
	InvitationExpired Code = "TG_2671" // the invitation's acceptance window has passed
	// users: add new codes above this line (TG_2670–TG_2689).
)

// SSH credential, audit, rate-limit and session-command codes of the REST API.
const (
	SSHKeyInvalid    Code = "TG_2617" // a public key that is not one authorized_keys line
	SSHKeyRegistered Code = "TG_2618" // the SSH public key is registered already
	// SessionCommandUnsupported: the agent said at Auth that it does not
	// execute the command (stop or restart), or is too old to say.
	SessionCommandUnsupported Code = "TG_2690"
	// SessionCommandRefused: the agent answered the command with an error.
	SessionCommandRefused Code = "TG_2691"
	// SessionCommandFailed: the command did not reach the agent, or the
	// agent did not answer in time.
	SessionCommandFailed Code = "TG_2692"
	// SessionCommandUnavailable: the edge serving the session takes no
	// commands from this control plane.
	SessionCommandUnavailable Code = "TG_2693"
	// SessionNotFound: the edge has no such agent session (it ended).
	SessionNotFound Code = "TG_2694"
	// api misc: add new codes above this line (TG_2690–TG_2709).
)

// SCIM provisioning codes (issue 15): the detail of a SCIM error
// response at /scim/v2/ (docs/scim.md), next to the RFC 7644 scimType.
const (
	SCIMInvalidSyntax Code = "TG_2800" // a SCIM request body that is not JSON of the resource's shape (scimType invalidSyntax)
	SCIMInvalidFilter Code = "TG_2801" // a filter other than userName, externalId, displayName or id eq "..." (invalidFilter)
	SCIMInvalidPath   Code = "TG_2802" // a PATCH path that cannot be parsed, or an op other than add, replace, remove (invalidPath)
	SCIMInvalidValue  Code = "TG_2803" // a value of the wrong type, such as active that is neither a boolean nor "True"/"False" (invalidValue)
	SCIMUserName      Code = "TG_2804" // a userName that is not an e-mail address (invalidValue)
	SCIMUniqueness    Code = "TG_2805" // the user is a member of the account already, or the group name is taken (uniqueness)
	SCIMNotFound      Code = "TG_2806" // no SCIM User or Group with this ID in the account, or no SCIM endpoint at the path
	SCIMForbidden     Code = "TG_2807" // the API key's owner is not an administrator of the account
	SCIMMutability    Code = "TG_2808" // a change of userName for a user who also belongs to other accounts (mutability)
	SCIMMemberUnknown Code = "TG_2809" // a group member that is not a user of the account (invalidValue)
	SCIMGroupRoles    Code = "TG_2810" // a group's Tollgate roles extension with a value outside its roles (invalidValue)
	SCIMMethod        Code = "TG_2811" // the SCIM endpoint does not support the HTTP method
	SCIMBodyTooLarge  Code = "TG_2812" // a SCIM request body over the size limit (invalidSyntax)
	// scim: add new codes above this line (TG_2800–TG_2819).
)

// Edge feed codes: the control plane's API for edges (snapshot feed,
// session reports).
const (
	EdgeAuth        Code = "TG_2710" // the edge secret is missing or wrong
	EdgeBadRequest  Code = "TG_2711" // a feed request or session report that cannot be parsed
	EdgeUnavailable Code = "TG_2712" // the control plane could not build a snapshot
	APIIPRestricted Code = "TG_2713" // the account's api IP restriction refuses the caller's address
)

// Dashboard codes: sign-in and the pages behind it (controlplane/dashboard.go).
const (
	DashboardSignIn       Code = "TG_2720" // the API key given at sign-in is missing, malformed or not valid
	DashboardBotUser      Code = "TG_2721" // a bot user's API key: bot users cannot sign in to the dashboard
	DashboardIPRestricted Code = "TG_2722" // the account's dashboard IP restriction refuses the browser's address
	DashboardSignedOut    Code = "TG_2723" // no session, or it expired, was signed out, or its API key was deleted
	DashboardForgery      Code = "TG_2724" // a form post without this session's form token, or from another origin
	DashboardNotFound     Code = "TG_2725" // no dashboard page at this path
	DashboardForbidden    Code = "TG_2726" // the signed-in user's roles do not allow the action
	DashboardBadInput     Code = "TG_2727" // a form field the action cannot use
	// dashboard: add new codes above this line (TG_2720–TG_2739).
)

// Identity codes: passwords, TOTP, password resets, sign-up and the
// accounts of a user (docs/dashboard-sign-in.md).
const (
	PasswordSignIn     Code = "TG_2820" // the e-mail address or password is wrong, or the user has no password
	PasswordPolicy     Code = "TG_2821" // a new password that the password rules refuse (length, common, the address)
	PasswordWrongOld   Code = "TG_2822" // changing a password: the current password given is wrong
	TOTPRequired       Code = "TG_2823" // the sign-in waits for the TOTP code, or the pending sign-in expired
	TOTPInvalid        Code = "TG_2824" // a TOTP code that is wrong, of another time step, or used already
	TOTPState          Code = "TG_2825" // TOTP enrolment out of order: already enrolled, or nothing to confirm
	ResetInvalid       Code = "TG_2826" // a password reset link that is unknown, used, revoked or expired
	ResetForbidden     Code = "TG_2827" // issuing a reset link for a user who belongs to accounts the issuer does not administer
	SignUpDisabled     Code = "TG_2828" // self sign-up is off on this control plane (tollgated --signup)
	SignUpTaken        Code = "TG_2829" // signing up with an e-mail address that already has a user
	SignInThrottled    Code = "TG_2830" // too many failed sign-ins from this address or for this user: wait
	AccountSwitch      Code = "TG_2831" // switching to an account the user does not belong to, or from an API-key session
	SignInMethodDenied Code = "TG_2832" // the account does not admit this sign-in method (for example SSO enforced)
	BotUserAccount     Code = "TG_2833" // a bot user cannot sign in, hold a password, or join a second account
	// identity: add new codes above this line (TG_2820–TG_2849).
)

// Single sign-on and account domain codes (issue 15): identity providers,
// SSO sign-in, and email domains an account claims (docs/sso.md).
const (
	SSOConfigInvalid    Code = "TG_2850" // an identity provider's settings or the account's SSO settings cannot be used
	SSONoProvider       Code = "TG_2851" // no identity provider applies to the email address or path
	SSOEnforced         Code = "TG_2852" // the account enforces SSO: password and API-key sign-in to the dashboard are refused
	SSODomainClaimed    Code = "TG_2853" // the address's domain is claimed by an account: sign in (or up) through its identity provider
	SSONotInvited       Code = "TG_2854" // invite-only provisioning: the identity provider's user is not a member of the account
	SSOResponseInvalid  Code = "TG_2855" // a SAML response or OIDC token refused: signature, algorithm, audience, time or request binding
	SSOReplayed         Code = "TG_2856" // a SAML assertion that was already used to sign in
	SSOStateInvalid     Code = "TG_2857" // an SSO callback with no sign-in in progress in this browser, or a foreign state or nonce
	SSOEmailUnverified  Code = "TG_2858" // the identity provider gave no email address, or one it has not verified
	SSOProviderFailed   Code = "TG_2859" // the identity provider's metadata, discovery or token endpoint could not be used
	SSOIdPInitiatedOff  Code = "TG_2860" // an unsolicited (IdP-initiated) SAML response to an identity provider that does not allow it
	EmailDomainInvalid  Code = "TG_2861" // not an email domain that can be claimed
	DomainNotVerified   Code = "TG_2862" // the domain's DNS TXT challenge record was not found
	DomainTaken         Code = "TG_2863" // the domain is verified by another account, or claimed twice by this one
	DomainNeedsProvider Code = "TG_2864" // a domain cannot be verified before the account has an identity provider
	// sso: add new codes above this line (TG_2850–TG_2879).
)

// ACME and certificate codes (issue 4).
const (
	// CertStoreKey: a certificate storage key, list prefix, lock name or
	// lock token that the edge API refuses (outside certmagic's key
	// syntax: path traversal, empty or odd components, too long).
	CertStoreKey Code = "TG_5100"
	// CertStoreNotFound: no certificate storage value or directory at the
	// key (certmagic's fs.ErrNotExist).
	CertStoreNotFound Code = "TG_5101"
	// CertStoreTooLarge: a certificate storage value or status report over
	// the edge API's size limit.
	CertStoreTooLarge Code = "TG_5102"
	// CertLockLost: renewing a certificate lock the caller no longer holds
	// (it expired and another edge took it, or it was released).
	CertLockLost Code = "TG_5103"
	// CertStoreDSN: `tollgated edge --cert-store` was given a database;
	// edges keep certificates through the control plane (control) or in
	// files, never in the control plane's database.
	CertStoreDSN Code = "TG_5104"
	// certificates: add new codes above this line (TG_5100–TG_5149).
)

// Edge IP policy and basic auth codes (issues 5 and 6). The IP policy
// conditions themselves use TG_115 (agent restriction), TG_393 (deny-only
// CIDR list) and TG_3205 (public client refused) above; the basic-auth
// numbers below 1000 are the hosted platform's for the same condition.
const (
	BasicAuthUser     Code = "TG_359"  // a basic-auth user name that is empty, too long or not RFC 7617 user-id
	BasicAuthPassword Code = "TG_360"  // a basic-auth password outside 8–128 characters, or with control characters
	BasicAuthRequired Code = "TG_3207" // the endpoint requires HTTP basic auth; the request had none or wrong credentials
	// edge ip policy: add new codes above this line (TG_3207–TG_3219).
)

// Edge limits codes (issue 12): failed logins throttled per client
// address.
const (
	// BasicAuthThrottled: too many failed basic-auth logins from this
	// address to this endpoint; the answer is 429 with Retry-After.
	BasicAuthThrottled Code = "TG_3240"
	// AuthThrottled: too many failed agent authtokens or SSH logins from
	// this address; retryable after the time the message names.
	AuthThrottled Code = "TG_3241"
	// edge limits: add new codes above this line (TG_3240–TG_3249).
)

// Event subscription codes (issue 14; docs/events.md). TG_238 is the
// hosted platform's number for an unknown event type; the rest are
// Tollgate's own range.
const (
	EventTypeInvalid Code = "TG_238" // a source type that is not an event type Tollgate produces
	// EventFilterInvalid: a source's CEL filter that does not compile or
	// does not yield a bool; the message carries the compiler's.
	EventFilterInvalid Code = "TG_5410"
	// EventFieldsInvalid: a source's fields that are not paths of an event.
	EventFieldsInvalid Code = "TG_5411"
	// EventTargetInvalid: an event destination's format or target that is
	// malformed (none or several targets, a bad URL, a missing field).
	EventTargetInvalid Code = "TG_5412"
	// EventTargetUnsupported: a target this control plane stores but does
	// not deliver to yet (Datadog),
	// or a file target without --events-file-dir.
	EventTargetUnsupported Code = "TG_5413"
	// EventDestinationInUse: deleting an event destination that an event
	// subscription still names.
	EventDestinationInUse Code = "TG_5414"
	// EventDestinationIDs: destination_ids naming no event destination of
	// the account, or too many.
	EventDestinationIDs Code = "TG_5415"
	// EventSourceExists: adding a source whose type the subscription has.
	EventSourceExists Code = "TG_5416"
	// EventTestFailed: the test event could not be delivered; the message
	// says why.
	EventTestFailed Code = "TG_5417"
	// EventEgressForbidden: an event destination's host is (or, when
	// delivering, resolves to) a loopback, private, link-local,
	// unspecified or multicast address the operator has not admitted with
	// --events-egress-allow (docs/events.md#egress).
	EventEgressForbidden Code = "TG_5418"
	// events: add new codes above this line (TG_5410–TG_5449).
)
