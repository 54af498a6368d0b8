package policy

import (
	"net/netip"

	"github.com/tollgate/tollgate/snapshot"
)

// Surface is what an IP restriction guards
// (docs/access-control.md#ip-restriction-surfaces): the dashboard sign-in,
// the REST API, agent sessions or the
// account's public endpoints.
type Surface string

// Surfaces, as the ip_restrictions API spells their type.
const (
	SurfaceDashboard Surface = "dashboard"
	SurfaceAPI       Surface = "api"
	SurfaceAgent     Surface = "agent"
	SurfaceEndpoints Surface = "endpoints"
)

// IPDecision is the outcome of checking a source address against an
// account's IP restrictions for one surface.
type IPDecision struct {
	// Allowed is false when an enforced restriction refused the address.
	Allowed bool
	// RestrictionID names the restriction that refused the address (the
	// first enforced one, or else the first unenforced one): when Allowed
	// is true and RestrictionID is set, an unenforced (dry-run) restriction
	// would have refused it and the caller logs that. "" when every
	// restriction admitted the address.
	RestrictionID string
}

type compiledRestriction struct {
	id       string
	enforced bool
	m        *IPMatcher
}

// Restrictions holds every account's IP restrictions compiled for lookup.
// Build it once per snapshot with CompileRestrictions; Check is safe for
// concurrent use and does not allocate.
type Restrictions struct {
	byAccount map[string]map[Surface][]compiledRestriction
}

// CompileRestrictions compiles the snapshot's IP restrictions. Each
// restriction's matcher is the union of the rules of the policies it names
// (docs/access-control.md#ip-policy-evaluation); a policy missing from the
// snapshot contributes no rules,
// and a rule whose CIDR does not parse is skipped (the API never stores one).
func CompileRestrictions(snap *snapshot.Snapshot) *Restrictions {
	rs := &Restrictions{byAccount: map[string]map[Surface][]compiledRestriction{}}
	if snap == nil {
		return rs
	}
	for r := range snap.AllIPRestrictions() {
		bySurface := rs.byAccount[r.AccountID]
		if bySurface == nil {
			bySurface = map[Surface][]compiledRestriction{}
			rs.byAccount[r.AccountID] = bySurface
		}
		s := Surface(r.Type)
		bySurface[s] = append(bySurface[s], compiledRestriction{
			id: r.ID, enforced: r.Enforced, m: CompilePolicies(snap, r.IPPolicyIDs, nil),
		})
	}
	return rs
}

// CompilePolicies returns the matcher for the union of the rules of the
// named IP policies plus extra rules (an endpoint's --cidr-allow and
// --cidr-deny). Unknown policy IDs and unparsable CIDRs contribute nothing.
func CompilePolicies(snap *snapshot.Snapshot, policyIDs []string, extra []IPRule) *IPMatcher {
	rules := append([]IPRule(nil), extra...)
	for _, id := range policyIDs {
		p, ok := snap.IPPolicy(id)
		if !ok {
			continue
		}
		for _, r := range p.Rules {
			prefix, err := ParseCIDR(r.CIDR)
			if err != nil {
				continue
			}
			rules = append(rules, IPRule{Prefix: prefix, Deny: r.Action == "deny"})
		}
	}
	return CompileIPRules(rules)
}

// Check decides addr for the account's restrictions on surface. Every
// restriction of that surface must admit the address; an account without
// restrictions on the surface admits everyone.
func (rs *Restrictions) Check(accountID string, surface Surface, addr netip.Addr) IPDecision {
	d := IPDecision{Allowed: true}
	if rs == nil {
		return d
	}
	for _, r := range rs.byAccount[accountID][surface] {
		if r.m.Allowed(addr) {
			continue
		}
		if r.enforced {
			return IPDecision{Allowed: false, RestrictionID: r.id}
		}
		if d.RestrictionID == "" {
			d.RestrictionID = r.id
		}
	}
	return d
}
