package store

import (
	"encoding/json"
	"time"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/snapshot"
)

// Account is a tenant: it owns bot users, credentials and (later)
// reservations; users join it through memberships.
type Account struct {
	ID        string // acct_...
	Name      string
	Active    bool // a suspended account admits nobody
	CreatedAt time.Time
}

// User is a human principal. One user may belong to several accounts.
type User struct {
	ID        string // usr_...
	Email     string // unique, lower case
	Name      string
	Active    bool
	CreatedAt time.Time
}

// BotUser is a principal that only holds credentials: it belongs to one
// account and acts there as a read/write developer.
type BotUser struct {
	ID        string // bot_...
	AccountID string
	Name      string
	Active    bool
	CreatedAt time.Time
}

// DeveloperRole is a user's developer dimension of RBAC.
type DeveloperRole string

// Developer roles.
const (
	DeveloperRW DeveloperRole = "rw" // create, change and delete resources
	DeveloperRO DeveloperRole = "ro" // read only
)

// TeamRole is a user's team dimension of RBAC.
type TeamRole string

// Team roles.
const (
	TeamManager TeamRole = "manager" // invite and remove users, change their roles (not admins')
	TeamInvite  TeamRole = "invite"  // see and invite users
	TeamRO      TeamRole = "ro"      // see users
)

// Membership is a user's place in an account: the three RBAC dimensions
// plus the administrator flag (docs/api-compatibility.md#roles).
type Membership struct {
	AccountID string
	UserID    string
	Developer DeveloperRole
	Team      TeamRole
	Billing   bool // plan and billing access
	Admin     bool // everything, including account settings
	CreatedAt time.Time
}

// APIKey is a REST API credential (ak_...). Its token is returned once, by
// CreateAPIKey.
type APIKey struct {
	ID          string
	AccountID   string
	OwnerID     string // usr_... or bot_...
	Description string
	Metadata    string
	CreatedAt   time.Time
}

// Authtoken is an agent credential (cr_...). Its token is returned once, by
// CreateAuthtoken.
type Authtoken struct {
	ID          string
	AccountID   string
	OwnerID     string
	Description string
	Metadata    string
	ACL         []string // normalised bind rules; empty = unrestricted
	CreatedAt   time.Time
}

// SSHCredential is an SSH public key credential (sshcr_...).
type SSHCredential struct {
	ID          string
	AccountID   string
	OwnerID     string
	Description string
	Metadata    string
	PublicKey   string // authorized_keys line as given
	Fingerprint string // SHA256:... (ssh.FingerprintSHA256)
	ACL         []string
	CreatedAt   time.Time
}

// AuditEvent is one row of the audit log: what changed, in which revision,
// by whom.
type AuditEvent struct {
	ID                string // ev_...
	Revision          uint64
	AccountID         string
	Type              string // e.g. "api_key_created.v0"
	ActorID           string // usr_, bot_ or "system"
	ActorCredentialID string
	ObjectID          string
	Payload           json.RawMessage
	CreatedAt         time.Time
}

// APIKeyAuth is what the API needs to authenticate a request made with an
// API key and authorise it: the key's hash, its account and its owner's
// state and roles in that account.
type APIKeyAuth struct {
	KeyID         string
	AccountID     string
	OwnerID       string
	OwnerKind     snapshot.PrincipalKind
	SecretHash    string
	AccountActive bool
	OwnerActive   bool
	// Member is false for a user owner who no longer belongs to the account.
	// Bot owners are always members of their account.
	Member bool
	// Roles are the owner's roles in the account: from the membership for
	// a user; developer rw and nothing else for a bot user.
	Roles Membership
}

// State returns what authn.CheckAPIKey decides on.
func (a *APIKeyAuth) State() authn.APIKeyState {
	return authn.APIKeyState{SecretHash: a.SecretHash, AccountActive: a.AccountActive, OwnerActive: a.OwnerActive, Member: a.Member}
}

// Page selects one page of a list, newest first.
type Page struct {
	// BeforeID, when set, returns only objects with smaller (older) IDs.
	BeforeID string
	// Limit is the page size, 1–MaxPageSize; 0 means MaxPageSize.
	Limit int
}

// MaxPageSize is the largest Page.Limit.
const MaxPageSize = 100

func (p Page) limit() int {
	if p.Limit <= 0 || p.Limit > MaxPageSize {
		return MaxPageSize
	}
	return p.Limit
}

// fromMicros turns a stored timestamp into UTC time.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
