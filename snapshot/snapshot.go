package snapshot

import (
	"encoding/json"
	"fmt"
	"io"
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

// Snapshot is an immutable, indexed Data. Build one with New
// and share the pointer; never modify its data afterwards.
type Snapshot struct {
	data Data

	accounts   map[string]*Account
	principals map[string]*Principal
	authtokens map[string]*Authtoken
	sshByFP    map[string]*SSHCredential
	domains    map[string]*ReservedDomain
	addrs      map[string]*ReservedAddr
	policies   map[string]*IPPolicy
	restrict   map[string][]*IPRestriction // account ID -> restrictions
}

// New indexes d and returns the immutable snapshot. d must not be
// modified afterwards. It returns an error when an ID repeats.
func New(d Data) (*Snapshot, error) {
	s := &Snapshot{
		data:       d,
		accounts:   make(map[string]*Account, len(d.Accounts)),
		principals: make(map[string]*Principal, len(d.Principals)),
		authtokens: make(map[string]*Authtoken, len(d.Authtokens)),
		sshByFP:    make(map[string]*SSHCredential, len(d.SSHCredentials)),
		domains:    make(map[string]*ReservedDomain, len(d.ReservedDomains)),
		addrs:      make(map[string]*ReservedAddr, len(d.ReservedAddrs)),
		policies:   make(map[string]*IPPolicy, len(d.IPPolicies)),
		restrict:   make(map[string][]*IPRestriction),
	}
	if err := index(s.accounts, d.Accounts, func(a *Account) string { return a.ID }); err != nil {
		return nil, err
	}
	if err := index(s.principals, d.Principals, func(p *Principal) string { return p.ID }); err != nil {
		return nil, err
	}
	if err := index(s.authtokens, d.Authtokens, func(a *Authtoken) string { return a.ID }); err != nil {
		return nil, err
	}
	if err := index(s.sshByFP, d.SSHCredentials, func(c *SSHCredential) string { return c.Fingerprint }); err != nil {
		return nil, err
	}
	if err := index(s.domains, d.ReservedDomains, func(r *ReservedDomain) string { return r.Domain }); err != nil {
		return nil, err
	}
	if err := index(s.addrs, d.ReservedAddrs, func(r *ReservedAddr) string { return r.Addr }); err != nil {
		return nil, err
	}
	if err := index(s.policies, d.IPPolicies, func(p *IPPolicy) string { return p.ID }); err != nil {
		return nil, err
	}
	for i := range d.IPRestrictions {
		r := &d.IPRestrictions[i]
		s.restrict[r.AccountID] = append(s.restrict[r.AccountID], r)
	}
	return s, nil
}

func index[T any](m map[string]*T, items []T, key func(*T) string) error {
	for i := range items {
		k := key(&items[i])
		if _, dup := m[k]; dup {
			return fmt.Errorf("snapshot: duplicate key %q in %T", k, items[i])
		}
		m[k] = &items[i]
	}
	return nil
}

// Revision returns the store revision the snapshot reflects.
func (s *Snapshot) Revision() uint64 { return s.data.Revision }

// Data returns the snapshot's content. Callers must not modify it.
func (s *Snapshot) Data() *Data { return &s.data }

// Account returns the account with the given ID.
func (s *Snapshot) Account(id string) (*Account, bool) { a, ok := s.accounts[id]; return a, ok }

// Principal returns the user or bot user with the given ID.
func (s *Snapshot) Principal(id string) (*Principal, bool) { p, ok := s.principals[id]; return p, ok }

// Authtoken returns the authtoken credential with the given cr_ ID.
func (s *Snapshot) Authtoken(id string) (*Authtoken, bool) { a, ok := s.authtokens[id]; return a, ok }

// SSHCredentialByFingerprint returns the SSH credential whose key has the
// given SHA256 fingerprint.
func (s *Snapshot) SSHCredentialByFingerprint(fp string) (*SSHCredential, bool) {
	c, ok := s.sshByFP[fp]
	return c, ok
}

// ReservedDomain returns the reservation of an exact domain (lower case).
func (s *Snapshot) ReservedDomain(domain string) (*ReservedDomain, bool) {
	r, ok := s.domains[domain]
	return r, ok
}

// ReservedAddr returns the reservation of a TCP address host:port.
func (s *Snapshot) ReservedAddr(addr string) (*ReservedAddr, bool) {
	r, ok := s.addrs[addr]
	return r, ok
}

// IPPolicy returns the IP policy with the given ID.
func (s *Snapshot) IPPolicy(id string) (*IPPolicy, bool) { p, ok := s.policies[id]; return p, ok }

// IPRestrictions returns the account's IP restrictions.
func (s *Snapshot) IPRestrictions(accountID string) []*IPRestriction { return s.restrict[accountID] }

// Encode writes the snapshot as JSON to w.
func (s *Snapshot) Encode(w io.Writer) error { return json.NewEncoder(w).Encode(&s.data) }

// Decode reads a JSON snapshot from r, rejecting unknown fields, and
// indexes it.
func Decode(r io.Reader) (*Snapshot, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var d Data
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("decoding snapshot: %w", err)
	}
	return New(d)
}
