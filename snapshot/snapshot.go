package snapshot

import (
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"time"
)

// Data is the serialisable content of a control-plane snapshot: every
// fact an edge needs to admit or refuse agents and public clients, as of one
// store revision. Slices are in no particular order; New indexes them.
type Data struct {
	// Revision is the store revision this snapshot reflects; it only grows.
	Revision uint64 `json:"revision"`
	// CreatedAt is when the control plane built the snapshot (UTC).
	CreatedAt time.Time `json:"created_at"`

	Accounts        []Account        `json:"accounts"`
	Principals      []Principal      `json:"principals"`
	Authtokens      []Authtoken      `json:"authtokens"`
	SSHCredentials  []SSHCredential  `json:"ssh_credentials"`
	ReservedDomains []ReservedDomain `json:"reserved_domains"`
	ReservedAddrs   []ReservedAddr   `json:"reserved_addrs"`
	IPPolicies      []IPPolicy       `json:"ip_policies"`
	IPRestrictions  []IPRestriction  `json:"ip_restrictions"`
	// RouteHolders is every region's route table (routes.go).
	RouteHolders []RouteHolder `json:"route_holders,omitempty"`
}

// Account is a tenant: it owns principals, credentials and reservations.
type Account struct {
	ID     string `json:"id"` // acct_...
	Name   string `json:"name"`
	Active bool   `json:"active"` // a suspended account admits nobody
}

// PrincipalKind says whether a principal is a human user or a bot user.
type PrincipalKind string

// Principal kinds.
const (
	PrincipalUser PrincipalKind = "user"
	PrincipalBot  PrincipalKind = "bot"
)

// Principal is a user or bot user as seen by the edge: who owns a credential
// and whether it may act. Users may belong to several accounts, so a
// principal's AccountIDs lists every account the principal acts in.
type Principal struct {
	ID         string        `json:"id"` // usr_... or bot_...
	Kind       PrincipalKind `json:"kind"`
	Name       string        `json:"name"`
	Active     bool          `json:"active"`
	AccountIDs []string      `json:"account_ids"`
	// DeactivatedIn lists the accounts of AccountIDs where the user's
	// membership is deactivated (SCIM active: false, docs/scim.md): their
	// credentials there do not work, those elsewhere do. Empty for most.
	DeactivatedIn []string `json:"deactivated_in,omitempty"`
}

// ActiveIn reports whether the principal is active and its membership of
// account accountID is not deactivated (DeactivatedIn). It does not check
// that the principal belongs to the account.
func (p *Principal) ActiveIn(accountID string) bool {
	return p.Active && !slices.Contains(p.DeactivatedIn, accountID)
}

// Authtoken is a tunnel credential (cr_...). Only the hash of its secret is
// here; the secret itself is never stored (authn computes and checks it).
type Authtoken struct {
	ID         string   `json:"id"`
	AccountID  string   `json:"account_id"`
	OwnerID    string   `json:"owner_id"`
	SecretHash string   `json:"secret_hash"` // authn.HashSecret of the secret part
	ACL        []string `json:"acl"`         // bind rules; empty means unrestricted
}

// SSHCredential is an SSH public key credential (sshcr_...).
type SSHCredential struct {
	ID          string   `json:"id"`
	AccountID   string   `json:"account_id"`
	OwnerID     string   `json:"owner_id"`
	Fingerprint string   `json:"fingerprint"` // SHA256:... as ssh.FingerprintSHA256 prints it
	PublicKey   string   `json:"public_key"`  // authorized_keys line
	ACL         []string `json:"acl"`
}

// ReservedDomain is a hostname an account reserved, pinned to a region.
type ReservedDomain struct {
	ID             string `json:"id"`
	AccountID      string `json:"account_id"`
	Domain         string `json:"domain"` // lower case, punycode; may start with "*."
	Region         string `json:"region"`
	MinTLSVersion  string `json:"min_tls_version,omitempty"`  // "1.0".."1.3"; "" = edge default
	PrivateKeyType string `json:"private_key_type,omitempty"` // "rsa" or "ecdsa"; "" = no certificate management policy
	// HSTS is the Strict-Transport-Security value edges set on the
	// domain's HTTPS responses, canonical ("max-age=N[; includeSubDomains][; preload]");
	// "" = none. It wins over an endpoint's own (docs/tls.md#hsts).
	HSTS string `json:"hsts,omitempty"`
}

// ReservedAddr is a TCP address (host:port) an account reserved in a region.
type ReservedAddr struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Addr      string `json:"addr"`
	Region    string `json:"region"`
}

// IPPolicy is a named set of allow/deny CIDR rules.
type IPPolicy struct {
	ID        string         `json:"id"`
	AccountID string         `json:"account_id"`
	Rules     []IPPolicyRule `json:"rules"`
}

// IPPolicyRule is one CIDR with an action, "allow" or "deny".
type IPPolicyRule struct {
	ID     string `json:"id"`
	CIDR   string `json:"cidr"`
	Action string `json:"action"`
}

// IPRestriction applies IP policies to one surface of an account: "dashboard",
// "api", "agent" or "endpoints". When Enforced is false, denials are only
// logged.
type IPRestriction struct {
	ID          string   `json:"id"`
	AccountID   string   `json:"account_id"`
	Type        string   `json:"type"`
	Enforced    bool     `json:"enforced"`
	IPPolicyIDs []string `json:"ip_policy_ids"`
}

// Snapshot is an immutable, indexed Data. Build one with New (from a whole
// Data) or with Apply (from an older snapshot and a delta, in O(change));
// share the pointer; never modify what its accessors return.
//
// Its indexes are copy-on-write maps (cowMap): a snapshot derived by Apply
// shares every untouched shard with its parent, so the two cost little more
// memory than one.
type Snapshot struct {
	revision  uint64
	createdAt time.Time

	accounts    cowMap[*Account]
	principals  cowMap[*Principal]
	authtokens  cowMap[*Authtoken]
	sshByID     cowMap[*SSHCredential]
	sshByFP     cowMap[*SSHCredential]
	domainsByID cowMap[*ReservedDomain]
	domains     cowMap[*ReservedDomain] // by domain
	addrsByID   cowMap[*ReservedAddr]
	addrs       cowMap[*ReservedAddr] // by host:port
	policies    cowMap[*IPPolicy]
	restrByID   cowMap[*IPRestriction]
	restrict    cowMap[[]*IPRestriction] // account ID -> restrictions, ordered by ID
	routes      cowMap[*RouteHolder]     // by endpoint ID
	routesByKey cowMap[[]*RouteHolder]   // RouteKey -> holders, ordered by ID

	// delta is the delta Apply made this snapshot from (nil for New): the
	// edge appends it to its persisted log instead of rewriting the whole
	// snapshot.
	delta *Delta
}

// New indexes d and returns the immutable snapshot. d must not be
// modified afterwards. It returns an error when an ID repeats, or a
// fingerprint, reserved domain or reserved address is held twice.
func New(d Data) (*Snapshot, error) {
	s := &Snapshot{
		revision:    d.Revision,
		createdAt:   d.CreatedAt,
		accounts:    newCowMap[*Account](len(d.Accounts)),
		principals:  newCowMap[*Principal](len(d.Principals)),
		authtokens:  newCowMap[*Authtoken](len(d.Authtokens)),
		sshByID:     newCowMap[*SSHCredential](len(d.SSHCredentials)),
		sshByFP:     newCowMap[*SSHCredential](len(d.SSHCredentials)),
		domainsByID: newCowMap[*ReservedDomain](len(d.ReservedDomains)),
		domains:     newCowMap[*ReservedDomain](len(d.ReservedDomains)),
		addrsByID:   newCowMap[*ReservedAddr](len(d.ReservedAddrs)),
		addrs:       newCowMap[*ReservedAddr](len(d.ReservedAddrs)),
		policies:    newCowMap[*IPPolicy](len(d.IPPolicies)),
		restrByID:   newCowMap[*IPRestriction](len(d.IPRestrictions)),
		restrict:    newCowMap[[]*IPRestriction](len(d.IPRestrictions)),
	}
	if err := index(&s.accounts, d.Accounts, accountID); err != nil {
		return nil, err
	}
	if err := index(&s.principals, d.Principals, principalID); err != nil {
		return nil, err
	}
	if err := index(&s.authtokens, d.Authtokens, authtokenID); err != nil {
		return nil, err
	}
	if err := index(&s.sshByID, d.SSHCredentials, sshID); err != nil {
		return nil, err
	}
	if err := index(&s.sshByFP, d.SSHCredentials, func(c *SSHCredential) string { return c.Fingerprint }); err != nil {
		return nil, err
	}
	if err := index(&s.domainsByID, d.ReservedDomains, domainID); err != nil {
		return nil, err
	}
	if err := index(&s.domains, d.ReservedDomains, func(r *ReservedDomain) string { return r.Domain }); err != nil {
		return nil, err
	}
	if err := index(&s.addrsByID, d.ReservedAddrs, addrID); err != nil {
		return nil, err
	}
	if err := index(&s.addrs, d.ReservedAddrs, func(r *ReservedAddr) string { return r.Addr }); err != nil {
		return nil, err
	}
	if err := index(&s.policies, d.IPPolicies, policyID); err != nil {
		return nil, err
	}
	if err := index(&s.restrByID, d.IPRestrictions, restrictionID); err != nil {
		return nil, err
	}
	byAccount := map[string][]*IPRestriction{}
	for i := range d.IPRestrictions {
		r := &d.IPRestrictions[i]
		byAccount[r.AccountID] = append(byAccount[r.AccountID], r)
	}
	for acct, list := range byAccount {
		sortRestrictions(list)
		s.restrict.put(acct, list)
	}
	if err := s.indexRoutes(d.RouteHolders); err != nil {
		return nil, err
	}
	return s, nil
}

func accountID(v *Account) string           { return v.ID }
func principalID(v *Principal) string       { return v.ID }
func authtokenID(v *Authtoken) string       { return v.ID }
func sshID(v *SSHCredential) string         { return v.ID }
func domainID(v *ReservedDomain) string     { return v.ID }
func addrID(v *ReservedAddr) string         { return v.ID }
func policyID(v *IPPolicy) string           { return v.ID }
func restrictionID(v *IPRestriction) string { return v.ID }

func sortRestrictions(list []*IPRestriction) {
	slices.SortFunc(list, func(a, b *IPRestriction) int { return strings.Compare(a.ID, b.ID) })
}

func index[T any](m *cowMap[*T], items []T, key func(*T) string) error {
	for i := range items {
		k := key(&items[i])
		if !m.put(k, &items[i]) {
			return fmt.Errorf("snapshot: duplicate key %q in %T", k, items[i])
		}
	}
	return nil
}

// Revision returns the store revision the snapshot reflects.
func (s *Snapshot) Revision() uint64 { return s.revision }

// CreatedAt returns when the control plane made the snapshot (UTC).
func (s *Snapshot) CreatedAt() time.Time { return s.createdAt }

// Delta returns the delta that Apply made this snapshot from, or nil when
// New built it from a whole Data.
func (s *Snapshot) Delta() *Delta { return s.delta }

// Len returns the number of objects in the snapshot.
func (s *Snapshot) Len() int {
	return s.accounts.len() + s.principals.len() + s.authtokens.len() + s.sshByID.len() +
		s.domainsByID.len() + s.addrsByID.len() + s.policies.len() + s.restrByID.len() + s.routes.len()
}

// Authtokens returns the number of authtokens in the snapshot.
func (s *Snapshot) Authtokens() int { return s.authtokens.len() }

// Data returns the snapshot's content as a new Data, for encoding a whole
// snapshot. It costs O(objects): callers on a path that runs per change use
// the accessors and iterators instead. The objects are shared with the
// snapshot: do not modify them.
func (s *Snapshot) Data() *Data {
	return &Data{
		Revision:        s.revision,
		CreatedAt:       s.createdAt,
		Accounts:        values(&s.accounts),
		Principals:      values(&s.principals),
		Authtokens:      values(&s.authtokens),
		SSHCredentials:  values(&s.sshByID),
		ReservedDomains: values(&s.domainsByID),
		ReservedAddrs:   values(&s.addrsByID),
		IPPolicies:      values(&s.policies),
		IPRestrictions:  values(&s.restrByID),
		RouteHolders:    values(&s.routes),
	}
}

func values[T any](m *cowMap[*T]) []T {
	out := make([]T, 0, m.len())
	for _, v := range m.all() {
		out = append(out, *v)
	}
	return out
}

// Account returns the account with the given ID.
func (s *Snapshot) Account(id string) (*Account, bool) { return s.accounts.get(id) }

// Principal returns the user or bot user with the given ID.
func (s *Snapshot) Principal(id string) (*Principal, bool) { return s.principals.get(id) }

// Authtoken returns the authtoken credential with the given cr_ ID.
func (s *Snapshot) Authtoken(id string) (*Authtoken, bool) { return s.authtokens.get(id) }

// SSHCredentialByFingerprint returns the SSH credential whose key has the
// given SHA256 fingerprint.
func (s *Snapshot) SSHCredentialByFingerprint(fp string) (*SSHCredential, bool) {
	return s.sshByFP.get(fp)
}

// ReservedDomain returns the reservation of an exact domain (lower case).
func (s *Snapshot) ReservedDomain(domain string) (*ReservedDomain, bool) {
	return s.domains.get(domain)
}

// CoveringReservedDomain returns the reservation that covers the
// lower-case name for binding and certificates: name's own, else the
// wildcard "*.<parent>" when name is exactly one label under <parent>
// (the depth a wildcard certificate and a wildcard endpoint cover;
// docs/wildcard-endpoints.md). A wildcard name ("*.example.com") is
// covered only by its own reservation.
func (s *Snapshot) CoveringReservedDomain(name string) (*ReservedDomain, bool) {
	if rd, ok := s.domains.get(name); ok {
		return rd, true
	}
	if i := strings.IndexByte(name, '.'); i > 0 && name[0] != '*' && strings.IndexByte(name[i+1:], '.') > 0 {
		return s.domains.get("*" + name[i:])
	}
	return nil, false
}

// ReservedAddr returns the reservation of a TCP address host:port.
func (s *Snapshot) ReservedAddr(addr string) (*ReservedAddr, bool) { return s.addrs.get(addr) }

// IPPolicy returns the IP policy with the given ID.
func (s *Snapshot) IPPolicy(id string) (*IPPolicy, bool) { return s.policies.get(id) }

// IPRestrictions returns the account's IP restrictions, ordered by ID.
func (s *Snapshot) IPRestrictions(accountID string) []*IPRestriction {
	r, _ := s.restrict.get(accountID)
	return r
}

// AllReservedDomains yields every reserved domain, in no particular order.
func (s *Snapshot) AllReservedDomains() iter.Seq[*ReservedDomain] { return seq(&s.domainsByID) }

// AllIPRestrictions yields every IP restriction: account by account in no
// particular order, and each account's ordered by ID.
func (s *Snapshot) AllIPRestrictions() iter.Seq[*IPRestriction] {
	return func(yield func(*IPRestriction) bool) {
		for _, list := range s.restrict.all() {
			for _, r := range list {
				if !yield(r) {
					return
				}
			}
		}
	}
}

func seq[V any](m *cowMap[V]) iter.Seq[V] {
	return func(yield func(V) bool) {
		for _, v := range m.all() {
			if !yield(v) {
				return
			}
		}
	}
}

// Encode writes the snapshot as JSON (a Data) to w.
func (s *Snapshot) Encode(w io.Writer) error { return json.NewEncoder(w).Encode(s.Data()) }

// Decode reads a JSON snapshot (a Data) from r and indexes it. Fields it
// does not know are ignored, so that a snapshot written by a newer version
// still loads (forward compatibility, as for the feed).
func Decode(r io.Reader) (*Snapshot, error) {
	var d Data
	if err := json.NewDecoder(r).Decode(&d); err != nil {
		return nil, fmt.Errorf("decoding snapshot: %w", err)
	}
	return New(d)
}
