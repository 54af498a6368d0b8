package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/regions"
)

// Reservations: reserved domains (rd_) and reserved TCP addresses (ra_)
// (docs/api-compatibility.md#reservations, docs/regions.md#region-pinning). A name or address is
// reserved by at most one account: the UNIQUE constraints on
// reserved_domains.domain and reserved_addrs.addr decide, inside the unit of
// work that inserts, so concurrent reservations of one name have exactly one
// winner. A reservation's region never changes.

// Certificate authorities and private key types of a CertPolicy
// (docs/api-compatibility.md#reserved-domains).
const (
	CertAuthorityLetsEncrypt = "letsencrypt"
	PrivateKeyRSA            = "rsa"
	PrivateKeyECDSA          = "ecdsa"
)

// CertPolicy is a reserved domain's certificate management policy: the edges
// obtain and renew the domain's certificate from Authority, with a private
// key of PrivateKeyType.
type CertPolicy struct {
	Authority      string // CertAuthorityLetsEncrypt, the only authority
	PrivateKeyType string // PrivateKeyRSA or PrivateKeyECDSA
}

// DefaultCertPolicy returns the policy of a domain reserved without one:
// Let's Encrypt with an RSA key, the hosted platform's default.
func DefaultCertPolicy() *CertPolicy {
	return &CertPolicy{Authority: CertAuthorityLetsEncrypt, PrivateKeyType: PrivateKeyRSA}
}

// ValidateCertPolicy checks p and fills its defaults: an empty Authority is
// "letsencrypt", an empty PrivateKeyType is "rsa". Other values are refused
// with codes.CertPolicyInvalid.
func ValidateCertPolicy(p CertPolicy) (CertPolicy, error) {
	if p.Authority == "" {
		p.Authority = CertAuthorityLetsEncrypt
	}
	if p.PrivateKeyType == "" {
		p.PrivateKeyType = PrivateKeyRSA
	}
	if p.Authority != CertAuthorityLetsEncrypt {
		return p, codes.NewError(codes.CertPolicyInvalid,
			"Unknown certificate authority %q: the only authority is %q.", truncate(p.Authority, 60), CertAuthorityLetsEncrypt)
	}
	if p.PrivateKeyType != PrivateKeyRSA && p.PrivateKeyType != PrivateKeyECDSA {
		return p, codes.NewError(codes.CertPolicyInvalid,
			"Unknown private key type %q: use %q or %q.", truncate(p.PrivateKeyType, 60), PrivateKeyRSA, PrivateKeyECDSA)
	}
	return p, nil
}

// ParseRegion checks a reservation's region: one of the codes of the regions
// package (regions.CodeList). It refuses anything else, "" too,
// with codes.RegionInvalid.
func ParseRegion(s string) (string, error) {
	r, err := regions.Parse(s)
	if err != nil {
		return "", codes.NewError(codes.RegionInvalid,
			"Unknown region %q: use one of %s.", truncate(s, 30), regions.CodeList()).WithCause(err)
	}
	return string(r), nil
}

// ValidateMinTLSVersion checks a minimum TLS version: "1.0", "1.1", "1.2",
// "1.3" (policy.ParseTLSVersion; docs/tls.md#minimum-tls-version), or
// "" for the edge's default. Other values get codes.MinTLSVersionInvalid.
func ValidateMinTLSVersion(s string) error {
	if _, err := policy.ParseTLSVersion(s); err != nil {
		return codes.NewError(codes.MinTLSVersionInvalid,
			"Unknown min_tls_version %q: use \"1.0\", \"1.1\", \"1.2\" or \"1.3\", or \"\" for the edge default.", truncate(s, 30)).WithCause(err)
	}
	return nil
}

// ValidateHSTS checks a reserved domain's HSTS setting, a
// Strict-Transport-Security value (policy.ParseHSTS: max-age 0 to two
// years; preload only with includeSubDomains and a max-age of a year or
// more, as hstspreload.org requires; docs/tls.md#hsts), and returns its
// canonical form; "" (none) stays "". Other values get codes.HSTSInvalid.
func ValidateHSTS(s string) (string, error) {
	c, err := policy.CanonicalHSTS(s)
	if err != nil {
		return "", codes.NewError(codes.HSTSInvalid, "hsts is not valid: %v.", err).WithCause(err)
	}
	return c, nil
}

// MaxDomainBytes is the longest domain name in its ASCII form (RFC 1035
// §2.3.4, without the root dot).
const MaxDomainBytes = 253

// NormalizeDomain validates a domain to reserve and returns its stored form:
// lower case, internationalised labels in punycode (IDNA UTS #46 lookup
// rules, as browsers apply them), one trailing dot removed. A leading "*."
// makes a wildcard domain, which covers every name under it, at any depth,
// but not the name itself (policy.BindAllowed's semantics), for ownership;
// the wildcard endpoint and certificate it allows cover one label
// (docs/wildcard-endpoints.md#depth). The name needs
// two labels at least (three for a wildcard, "*.example.com"); its last
// label may not be all digits. IP addresses, ports, schemes, paths, "*"
// anywhere but the front, and names over MaxDomainBytes are refused with
// codes.DomainInvalid.
func NormalizeDomain(s string) (string, error) {
	bad := func(why string) error {
		return codes.NewError(codes.DomainInvalid, "%q is not a domain you can reserve: %s.", truncate(s, 100), why)
	}
	if s == "" {
		return "", bad("the domain is empty; give a name such as app.example.com or *.example.com")
	}
	if strings.Contains(s, "://") || strings.ContainsAny(s, "/:@?#[]") {
		return "", bad("give the bare name, such as app.example.com, without a scheme, port or path")
	}
	name := strings.TrimSuffix(s, ".")
	wildcard := strings.HasPrefix(name, "*.")
	if wildcard {
		name = name[2:]
	}
	if strings.Contains(name, "*") {
		return "", bad("a wildcard is allowed only as the first label, as in *.example.com")
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return "", bad("an IP address is not a domain; reserve a TCP address (reserved_addrs) instead")
	}
	ascii, err := hostnameASCII(name)
	if err != nil {
		return "", bad(err.Error())
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		if wildcard {
			return "", bad("a wildcard needs a domain of two labels or more under it, such as *.example.com")
		}
		return "", bad("a domain needs at least two labels, such as example.com")
	}
	if allDigits(labels[len(labels)-1]) {
		return "", bad("the last label is all digits, which no top-level domain is")
	}
	if wildcard {
		ascii = "*." + ascii
	}
	if len(ascii) > MaxDomainBytes {
		return "", bad(fmt.Sprintf("the name is longer than %d characters", MaxDomainBytes))
	}
	return ascii, nil
}

// hostnameASCII converts a hostname to its normal form
// (policy.NormalizeHostname) and returns what is wrong as a plain clause.
// Its callers have removed the one trailing dot a name may have.
func hostnameASCII(name string) (string, error) {
	if strings.HasSuffix(name, ".") {
		return "", errors.New("every label has 1 to 63 characters and neither starts nor ends with '-'")
	}
	ascii, err := policy.NormalizeHostname(name)
	if herr, ok := errors.AsType[*policy.HostnameError](err); ok {
		return "", errors.New(herr.Reason)
	}
	return ascii, err
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// NormalizeAddr validates a TCP address to reserve, "HOST:PORT", and returns
// its stored form: a hostname lower case and in punycode (as
// NormalizeDomain, without wildcards), an IP address in its canonical form
// (IPv4-mapped IPv6 folded to IPv4, IPv6 in brackets), the port 1–65535 in
// decimal without leading zeros. Anything else is refused with
// codes.AddrInvalid.
func NormalizeAddr(s string) (string, error) {
	bad := func(why string) error {
		return codes.NewError(codes.AddrInvalid, "%q is not a TCP address you can reserve: %s.", truncate(s, 100), why)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return "", bad("give HOST:PORT, such as 1.tcp.example.com:20000")
	}
	p, err := strconv.Atoi(port)
	if err != nil || !allDigits(port) || p < 1 || p > 65535 {
		return "", bad("the port must be a number from 1 to 65535")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", bad("an IPv6 zone is not allowed")
		}
		return net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(p)), nil
	}
	if strings.Contains(host, "*") {
		return "", bad("a TCP address cannot be a wildcard")
	}
	ascii, err := hostnameASCII(strings.TrimSuffix(host, "."))
	if err != nil {
		return "", bad("the host " + err.Error())
	}
	if labels := strings.Split(ascii, "."); len(labels) > 1 && allDigits(labels[len(labels)-1]) {
		return "", bad("the host is neither an IP address nor a hostname")
	}
	return net.JoinHostPort(ascii, strconv.Itoa(p)), nil
}

// coveringWildcards returns the wildcard domains that would cover domain (which
// may itself be a wildcard): "*.b.example.com" and "*.example.com" for
// "a.b.example.com". A wildcard of one label ("*.com") is never reservable,
// so it is not listed.
func coveringWildcards(domain string) []string {
	labels := strings.Split(strings.TrimPrefix(domain, "*."), ".")
	var out []string
	for i := 1; i+2 <= len(labels); i++ {
		out = append(out, "*."+strings.Join(labels[i:], "."))
	}
	return out
}

// ReservedDomain is a domain reserved by an account (rd_...).
type ReservedDomain struct {
	ID          string
	AccountID   string
	Domain      string // NormalizeDomain's form
	Region      string // a regions code; never changes
	Description string
	Metadata    string
	// CertPolicy is the certificate management policy; nil when the edges
	// obtain no certificate for the domain.
	CertPolicy *CertPolicy
	// MinTLSVersion is the lowest TLS version the edges accept for the
	// domain's endpoints: "1.0".."1.3", or "" for the edge default.
	MinTLSVersion string
	// HSTS is the Strict-Transport-Security value the edges set on the
	// domain's HTTPS responses, canonical (ValidateHSTS); "" for none.
	HSTS      string
	CreatedAt time.Time
}

// ReservedDomainCreate is the input of CreateReservedDomain.
type ReservedDomainCreate struct {
	Domain        string      // NormalizeDomain normalises it
	Region        string      // required: ParseRegion
	Description   string      // ValidateDescription
	Metadata      string      // ValidateMetadata
	CertPolicy    *CertPolicy // nil = none; ValidateCertPolicy fills defaults
	MinTLSVersion string      // ValidateMinTLSVersion
	HSTS          string      // ValidateHSTS; "" = none
}

// ReservedDomainUpdate is the input of UpdateReservedDomain; nil fields, and
// CertPolicy when SetCertPolicy is false, stay as they are.
type ReservedDomainUpdate struct {
	Description *string
	Metadata    *string
	// Region may only repeat the current region (codes.RegionImmutable).
	Region *string
	// SetCertPolicy replaces the certificate management policy with
	// CertPolicy; a nil CertPolicy removes it.
	SetCertPolicy bool
	CertPolicy    *CertPolicy
	MinTLSVersion *string // "" = the edge default
	HSTS          *string // ValidateHSTS; "" = none
}

const reservedDomainColumns = `SELECT id, account_id, domain, region, description, metadata,
	cert_authority, private_key_type, min_tls_version, hsts, created_at FROM reserved_domains`

func scanReservedDomain(r scanner) (ReservedDomain, error) {
	var d ReservedDomain
	var authority, keyType string
	var created int64
	err := r.Scan(&d.ID, &d.AccountID, &d.Domain, &d.Region, &d.Description, &d.Metadata,
		&authority, &keyType, &d.MinTLSVersion, &d.HSTS, &created)
	if authority != "" {
		d.CertPolicy = &CertPolicy{Authority: authority, PrivateKeyType: keyType}
	}
	d.CreatedAt = fromMicros(created)
	return d, err
}

// certPolicyColumns returns the stored form of a policy: the authority and
// key type, both "" for none.
func certPolicyColumns(p *CertPolicy) (authority, keyType string) {
	if p == nil {
		return "", ""
	}
	return p.Authority, p.PrivateKeyType
}

// certPolicyPayload is a policy as audit events record it.
func certPolicyPayload(p *CertPolicy) any {
	if p == nil {
		return nil
	}
	return map[string]string{"authority": p.Authority, "private_key_type": p.PrivateKeyType}
}

// validateReservedDomainCreate normalises in or returns the first problem.
func validateReservedDomainCreate(in ReservedDomainCreate) (ReservedDomainCreate, error) {
	var err error
	if in.Domain, err = NormalizeDomain(in.Domain); err != nil {
		return in, err
	}
	if in.Region, err = ParseRegion(in.Region); err != nil {
		return in, err
	}
	if err := ValidateDescription(in.Description); err != nil {
		return in, err
	}
	if err := ValidateMetadata(in.Metadata); err != nil {
		return in, err
	}
	if in.CertPolicy != nil {
		p, err := ValidateCertPolicy(*in.CertPolicy)
		if err != nil {
			return in, err
		}
		in.CertPolicy = &p
	}
	if err := ValidateMinTLSVersion(in.MinTLSVersion); err != nil {
		return in, err
	}
	if in.HSTS, err = ValidateHSTS(in.HSTS); err != nil {
		return in, err
	}
	return in, nil
}

// CreateReservedDomain reserves a domain for the account in one unit of
// work (audit event reserved_domain_created.v0). It returns a *ConflictError
// with codes.ReservedByOther when another account holds the domain, or a
// wildcard that covers it, or (for a wildcard) a name under it; and with
// codes.ReservedAlready when this account holds it already. Validation errors
// are *codes.Error. Nothing changes on error.
func (s *Store) CreateReservedDomain(ctx context.Context, actor Actor, accountID string, in ReservedDomainCreate) (*ReservedDomain, error) {
	in, err := validateReservedDomainCreate(in)
	if err != nil {
		return nil, err
	}
	var d *ReservedDomain
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		d, err = t.createReservedDomain(ctx, accountID, in)
		return err
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// createReservedDomain inserts a validated reservation. The overlap check
// with other accounts' wildcards reads in the same unit of work, which
// holds the revision row: writers are serialised, so no reservation can slip
// in between the check and the insert.
func (t *tx) createReservedDomain(ctx context.Context, accountID string, in ReservedDomainCreate) (*ReservedDomain, error) {
	if err := t.checkWildcardOverlap(ctx, accountID, in.Domain); err != nil {
		return nil, err
	}
	d := &ReservedDomain{ID: ids.New(ids.PrefixReservedDomain), AccountID: accountID, Domain: in.Domain,
		Region: in.Region, Description: in.Description, Metadata: in.Metadata, CertPolicy: in.CertPolicy,
		MinTLSVersion: in.MinTLSVersion, HSTS: in.HSTS, CreatedAt: fromMicros(t.stamp())}
	authority, keyType := certPolicyColumns(d.CertPolicy)
	var id string
	err := t.queryRow(ctx, `INSERT INTO reserved_domains
		(id, account_id, domain, region, description, metadata, cert_authority, private_key_type, min_tls_version, hsts, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (domain) DO NOTHING RETURNING id`,
		d.ID, accountID, d.Domain, d.Region, d.Description, d.Metadata, authority, keyType, d.MinTLSVersion, d.HSTS, t.stamp()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, t.reservedConflict(ctx, "reserved_domains", "domain", d.Domain, accountID)
	}
	if err != nil {
		return nil, fmt.Errorf("reserving domain %s: %w", d.Domain, err)
	}
	t.audit("reserved_domain_created.v0", accountID, d.ID, map[string]any{
		"domain": d.Domain, "region": d.Region, "description": d.Description,
		"certificate_management_policy": certPolicyPayload(d.CertPolicy), "min_tls_version": d.MinTLSVersion, "hsts": d.HSTS})
	return d, nil
}

// checkWildcardOverlap refuses a domain that another account's wildcard
// covers, and a wildcard that covers another account's domain.
func (t *tx) checkWildcardOverlap(ctx context.Context, accountID, domain string) error {
	args := []any{accountID}
	var conds []string
	if cover := coveringWildcards(domain); len(cover) > 0 {
		ph := make([]string, len(cover))
		for i, w := range cover {
			args = append(args, w)
			ph[i] = "$" + strconv.Itoa(len(args))
		}
		conds = append(conds, "domain IN ("+strings.Join(ph, ", ")+")")
	}
	if base, ok := strings.CutPrefix(domain, "*."); ok {
		// Labels hold only [a-z0-9-], so base has no LIKE metacharacters.
		args = append(args, "%."+base)
		conds = append(conds, "domain LIKE $"+strconv.Itoa(len(args)))
	}
	if len(conds) == 0 {
		return nil
	}
	var other string
	err := t.queryRow(ctx, `SELECT domain FROM reserved_domains WHERE account_id <> $1 AND (`+
		strings.Join(conds, " OR ")+`) LIMIT 1`, args...).Scan(&other)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking reservations overlapping %s: %w", domain, err)
	}
	if strings.HasPrefix(other, "*.") && strings.HasSuffix(domain, other[1:]) {
		return conflict(codes.ReservedByOther,
			"%s is covered by the wildcard domain %s, which another account reserved. Choose a name outside it.", domain, other)
	}
	return conflict(codes.ReservedByOther,
		"%s covers a domain that another account reserved. Reserve a narrower wildcard or the names you need.", domain)
}

// reservedConflict explains why inserting name into table (unique column
// col) did nothing: this account or another one holds it.
func (t *tx) reservedConflict(ctx context.Context, table, col, name, accountID string) error {
	var holder, id string
	err := t.queryRow(ctx, `SELECT account_id, id FROM `+table+` WHERE `+col+` = $1`, name).Scan(&holder, &id)
	if err != nil {
		// Only a reservation deleted in between could get here; the
		// constraint refused the insert all the same.
		return fmt.Errorf("%s %s: %w", col, name, ErrConflict)
	}
	if holder == accountID {
		return conflict(codes.ReservedAlready, "%s is already reserved in this account, as %s.", name, id)
	}
	return conflict(codes.ReservedByOther, "%s is reserved by another account. Choose another one.", name)
}

// GetReservedDomain returns a reserved domain of the account.
func (s *Store) GetReservedDomain(ctx context.Context, accountID, id string) (*ReservedDomain, error) {
	return getByID(ctx, s.rdb, reservedDomainColumns, "reserved domain", id, accountID, scanReservedDomain)
}

// ListReservedDomains returns one page of the account's reserved domains,
// newest first, and whether more remain.
func (s *Store) ListReservedDomains(ctx context.Context, accountID string, page Page) ([]ReservedDomain, bool, error) {
	return listPage(ctx, s.rdb, reservedDomainColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanReservedDomain)
}

// validateReservedDomainUpdate normalises in or returns the first problem.
func validateReservedDomainUpdate(in ReservedDomainUpdate) (ReservedDomainUpdate, error) {
	if err := validateOptional(in.Description, in.Metadata); err != nil {
		return in, err
	}
	if in.Region != nil {
		r, err := ParseRegion(*in.Region)
		if err != nil {
			return in, err
		}
		in.Region = &r
	}
	if in.SetCertPolicy && in.CertPolicy != nil {
		p, err := ValidateCertPolicy(*in.CertPolicy)
		if err != nil {
			return in, err
		}
		in.CertPolicy = &p
	}
	if in.MinTLSVersion != nil {
		if err := ValidateMinTLSVersion(*in.MinTLSVersion); err != nil {
			return in, err
		}
	}
	if in.HSTS != nil {
		c, err := ValidateHSTS(*in.HSTS)
		if err != nil {
			return in, err
		}
		in.HSTS = &c
	}
	return in, nil
}

// UpdateReservedDomain changes a reserved domain's description, metadata,
// certificate management policy, minimum TLS version or HSTS (audit event
// reserved_domain_updated.v0 listing the changes). A region other than the
// current one is refused with codes.RegionImmutable: the hosted platform does
// not move reservations between regions either (docs/api-compatibility.md#reserved-domains, error
// 451). An update that changes nothing commits nothing.
func (s *Store) UpdateReservedDomain(ctx context.Context, actor Actor, accountID, id string, in ReservedDomainUpdate) (*ReservedDomain, error) {
	in, err := validateReservedDomainUpdate(in)
	if err != nil {
		return nil, err
	}
	var d *ReservedDomain
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if d, err = getByID(ctx, t.sql, reservedDomainColumns, "reserved domain", id, accountID, scanReservedDomain); err != nil {
			return err
		}
		if in.Region != nil && *in.Region != d.Region {
			return codes.NewError(codes.RegionImmutable,
				"%s is reserved in region %s; a reservation's region cannot change. Release it and reserve it again in region %s.",
				d.Domain, d.Region, *in.Region)
		}
		changes := map[string]any{}
		setField(&d.Description, in.Description, "description", changes)
		setField(&d.Metadata, in.Metadata, "metadata", changes)
		if in.SetCertPolicy && certPolicyPayloadKey(in.CertPolicy) != certPolicyPayloadKey(d.CertPolicy) {
			d.CertPolicy = in.CertPolicy
			changes["certificate_management_policy"] = certPolicyPayload(d.CertPolicy)
		}
		setField(&d.MinTLSVersion, in.MinTLSVersion, "min_tls_version", changes)
		setField(&d.HSTS, in.HSTS, "hsts", changes)
		if len(changes) == 0 {
			return nil
		}
		authority, keyType := certPolicyColumns(d.CertPolicy)
		if _, err := t.exec(ctx, `UPDATE reserved_domains SET description = $1, metadata = $2, cert_authority = $3,
			private_key_type = $4, min_tls_version = $5, hsts = $6 WHERE id = $7`,
			d.Description, d.Metadata, authority, keyType, d.MinTLSVersion, d.HSTS, id); err != nil {
			return fmt.Errorf("updating reserved domain %s: %w", id, err)
		}
		t.audit("reserved_domain_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// certPolicyPayloadKey is a comparable form of a policy.
func certPolicyPayloadKey(p *CertPolicy) CertPolicy {
	if p == nil {
		return CertPolicy{}
	}
	return *p
}

// DeleteReservedDomain releases a reserved domain (audit event
// reserved_domain_deleted.v0); edges stop routing it to this account when
// the snapshot without it arrives.
func (s *Store) DeleteReservedDomain(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var domain, region string
		err := t.queryRow(ctx, `DELETE FROM reserved_domains WHERE id = $1 AND account_id = $2 RETURNING domain, region`,
			id, accountID).Scan(&domain, &region)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reserved domain %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("deleting reserved domain %s: %w", id, err)
		}
		t.audit("reserved_domain_deleted.v0", accountID, id, map[string]any{"domain": domain, "region": region})
		return nil
	})
	return err
}
