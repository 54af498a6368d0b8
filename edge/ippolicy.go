package edge

import (
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// IP policy at the edge (issue 6, docs/access-control.md#ip-policies):
//
//   - the account's `agent` IP restriction is checked when an agent or SSH
//     session authenticates; a refusal ends the session with TG_115;
//   - the account's `endpoints` IP restriction and the endpoint's own
//     policy (--cidr-allow, --cidr-deny, ip_policy_ids) are checked for
//     every public connection right after it is routed, before a byte goes
//     to the agent: HTTP gets a 403 page with TG_3205, TCP and TLS
//     connections are closed (reset);
//   - only the TCP peer address counts, IPv4-mapped IPv6 folded to IPv4;
//     X-Forwarded-For and Forwarded are never read;
//   - an unenforced (enforced: false) restriction that would have refused
//     a client lets it through and emits the "ip_policy.dry_run" event: a
//     Warn log line (rate-limited) and a counter. There is no event
//     subscription system at the edge yet; the log line is the event.
//
// Restrictions are compiled once per snapshot (enforce, or lazily by
// the first check that sees a newer snapshot) and read through an atomic
// pointer; an endpoint's own matcher is compiled at bind, and again once
// per snapshot when it names IP policies. A check allocates nothing.

// ipGates decides who may reach what by IP: the snapshot's IP restrictions
// (agent and endpoints surfaces), compiled once per snapshot, and the
// endpoints' own IP policies and basic auth (endpointAccess); it counts
// every refusal.
type ipGates struct {
	snap      *snapshotHolder
	log       *zap.Logger
	state     atomic.Pointer[ipState] // IP restrictions compiled from snap
	metrics   ipMetrics
	dryRunLog *rate.Limiter // bounds the warnings of unenforced IP restrictions
	// guard throttles failed basic-auth logins (guard.go).
	guard *guard
}

func newIPGates(snap *snapshotHolder, log *zap.Logger) *ipGates {
	return &ipGates{snap: snap, log: log, dryRunLog: newDryRunLimiter()}
}

// CheckAgentIP applies the account's `agent` IP restriction to an agent or
// SSH session from addr; a non-nil error (TG_115) refuses the session. It
// logs the refusal to log.
func (e *Edge) CheckAgentIP(accountID string, addr netip.Addr, log *zap.Logger) *codes.Error {
	return e.gates.checkAgentIP(accountID, addr, log)
}

// ipState is the snapshot's IP restrictions, compiled.
type ipState struct {
	snap         *snapshot.Snapshot
	restrictions *policy.Restrictions
}

// ipMetrics counts IP policy and basic-auth decisions; every reason exists
// from zero.
type ipMetrics struct {
	agentRefused     atomic.Int64 // agent sessions refused by the agent restriction (TG_115)
	endpointsRefused atomic.Int64 // public connections refused by the account's endpoints restriction
	endpointRefused  atomic.Int64 // public connections refused by the endpoint's own policy
	dryRun           atomic.Int64 // refusals an unenforced restriction let through
	dryRunLogDropped atomic.Int64 // dry-run log lines dropped by the rate limit
	basicAuthFailed  atomic.Int64 // requests answered 401
}

// IPPolicyCounts is a copy of the edge's IP policy and basic-auth counters.
type IPPolicyCounts struct {
	AgentRefused     int64 // agent and SSH sessions refused by the agent IP restriction
	EndpointsRefused int64 // public connections refused by an endpoints IP restriction
	EndpointRefused  int64 // public connections refused by an endpoint's own IP policy
	DryRun           int64 // refusals an unenforced restriction let through (logged)
	DryRunLogDropped int64 // dry-run log lines left out by the rate limit
	BasicAuthFailed  int64 // HTTP requests answered 401 for missing or wrong basic auth
}

// IPPolicyCounts returns the IP policy and basic-auth counters.
func (mx *Metrics) IPPolicyCounts() IPPolicyCounts {
	m := &mx.e.gates.metrics
	return IPPolicyCounts{
		AgentRefused: m.agentRefused.Load(), EndpointsRefused: m.endpointsRefused.Load(),
		EndpointRefused: m.endpointRefused.Load(), DryRun: m.dryRun.Load(),
		DryRunLogDropped: m.dryRunLogDropped.Load(), BasicAuthFailed: m.basicAuthFailed.Load(),
	}
}

// dryRunLogRate bounds the dry-run warnings: one client hammering an
// endpoint must not flood the log. Dropped lines are counted.
const (
	dryRunLogRate  = 10 // per second
	dryRunLogBurst = 20
)

func newDryRunLimiter() *rate.Limiter { return rate.NewLimiter(dryRunLogRate, dryRunLogBurst) }

// restrictions returns the IP restrictions of the current snapshot,
// compiling them when the snapshot changed since they were compiled.
func (g *ipGates) restrictions() *policy.Restrictions {
	snap := g.snap.Load()
	if st := g.state.Load(); st != nil && st.snap == snap {
		return st.restrictions
	}
	return g.compile(snap)
}

// compile compiles snap's IP restrictions and installs them,
// unless the ones installed meanwhile are the current snapshot's (snap was
// replaced while it compiled). Revisions are not compared: after a control
// plane reset the current snapshot may be older than the last one.
func (g *ipGates) compile(snap *snapshot.Snapshot) *policy.Restrictions {
	st := &ipState{snap: snap, restrictions: policy.CompileRestrictions(snap)}
	for {
		old := g.state.Load()
		if old != nil && old.snap != snap && old.snap == g.snap.Load() {
			return st.restrictions
		}
		if g.state.CompareAndSwap(old, st) {
			return st.restrictions
		}
	}
}

// errAgentIPRestricted is the refusal of an agent session from addr.
func errAgentIPRestricted(addr netip.Addr) *codes.Error {
	return codes.NewError(codes.AgentIPRestricted,
		"Your IP %s is not allowed to start agent sessions for this account: the account's agent IP restriction refuses it. Connect from an allowed network, or ask an administrator to allow this address in the restriction's IP policies.", addr)
}

// checkAgentIP applies the account's `agent` IP restriction to an agent or
// SSH session from addr; a non-nil error (TG_115) refuses the session. It
// logs the refusal to log.
func (g *ipGates) checkAgentIP(accountID string, addr netip.Addr, log *zap.Logger) *codes.Error {
	addr = addr.Unmap()
	d := g.restrictions().Check(accountID, policy.SurfaceAgent, addr)
	if !d.Allowed {
		g.metrics.agentRefused.Add(1)
		log.Info("agent session refused by the agent IP restriction",
			zap.String("ip_restriction_id", d.RestrictionID), zap.String("account_id", accountID),
			zap.Stringer("remote_addr", addr), zap.String("code", string(codes.AgentIPRestricted)))
		return errAgentIPRestricted(addr)
	}
	if d.RestrictionID != "" {
		g.dryRun(d.RestrictionID, accountID, policy.SurfaceAgent, addr, "")
	}
	return nil
}

// admit decides whether a public client at addr may reach ep: the
// account's `endpoints` IP restrictions, then the endpoint's own policy.
// It does not allocate (except to log an unenforced refusal).
func (g *ipGates) admit(ep *Endpoint, addr netip.Addr) bool {
	a := ep.access
	if a == nil {
		return true
	}
	addr = addr.Unmap()
	d := g.restrictions().Check(a.accountID, policy.SurfaceEndpoints, addr)
	if !d.Allowed {
		g.metrics.endpointsRefused.Add(1)
		if ce := g.log.Check(zap.DebugLevel, "public client refused by the endpoints IP restriction"); ce != nil {
			ce.Write(zap.String("ip_restriction_id", d.RestrictionID), zap.String("account_id", a.accountID),
				zap.String("endpoint", ep.url), zap.Stringer("remote_addr", addr))
		}
		return false
	}
	if d.RestrictionID != "" {
		g.dryRun(d.RestrictionID, a.accountID, policy.SurfaceEndpoints, addr, ep.url)
	}
	if m := a.matcher(g.snap.Load()); m != nil && !m.Allowed(addr) {
		g.metrics.endpointRefused.Add(1)
		if ce := g.log.Check(zap.DebugLevel, "public client refused by the endpoint's IP policy"); ce != nil {
			ce.Write(zap.String("account_id", a.accountID), zap.String("endpoint", ep.url), zap.Stringer("remote_addr", addr))
		}
		return false
	}
	return true
}

// dryRun emits the event of an unenforced restriction that would have
// refused addr: a counter and a rate-limited Warn line.
func (g *ipGates) dryRun(restrictionID, accountID string, surface policy.Surface, addr netip.Addr, endpointURL string) {
	g.metrics.dryRun.Add(1)
	if !g.dryRunLog.Allow() {
		g.metrics.dryRunLogDropped.Add(1)
		return
	}
	fields := []zap.Field{zap.String("event", "ip_policy.dry_run"), zap.String("ip_restriction_id", restrictionID),
		zap.String("account_id", accountID), zap.String("surface", string(surface)), zap.Stringer("remote_addr", addr)}
	if endpointURL != "" {
		fields = append(fields, zap.String("endpoint", endpointURL))
	}
	g.log.Warn("IP restriction not enforced: it would have refused this client; letting it through", fields...)
}

// endpointAccess is what an endpoint asks of public clients before a byte
// goes to its agent: its own IP policy and HTTP basic auth. Immutable once
// the endpoint is bound, except for the per-snapshot matcher.
type endpointAccess struct {
	gates     *ipGates
	accountID string
	// rules are the endpoint's --cidr-allow / --cidr-deny.
	rules []policy.IPRule
	// policyIDs are its ip_policy_ids; their rules join rules.
	policyIDs []string
	// static is the matcher of rules alone when policyIDs is empty; nil
	// (with no policyIDs) = the endpoint has no IP policy of its own.
	static *policy.IPMatcher
	// perSnap is the matcher of rules and policyIDs, compiled for one
	// snapshot; used when policyIDs is not empty.
	perSnap atomic.Pointer[snapMatcher]
	// basic is the endpoint's basic auth; nil = none.
	basic *basicAuth
}

type snapMatcher struct {
	snap *snapshot.Snapshot
	m    *policy.IPMatcher
}

// matcher returns the endpoint's own IP matcher for snap, nil when it has
// no IP policy of its own. With IP policies, the matcher is recompiled once
// per snapshot (policies change with the snapshot).
func (a *endpointAccess) matcher(snap *snapshot.Snapshot) *policy.IPMatcher {
	if len(a.policyIDs) == 0 {
		return a.static
	}
	if sm := a.perSnap.Load(); sm != nil && sm.snap == snap {
		return sm.m
	}
	sm := &snapMatcher{snap: snap, m: policy.CompilePolicies(snap, a.policyIDs, a.rules)}
	a.perSnap.Store(sm)
	return sm.m
}

// denyOnlyHelp is the explanation given with TG_393.
const denyOnlyHelp = "a client must match an allow rule and no deny rule, so deny rules alone refuse everyone; add 0.0.0.0/0 and ::/0 to allow everything not denied (--cidr-allow 0.0.0.0/0 --cidr-allow ::/0)"

// newEndpointAccess validates an endpoint's IP restriction and basic-auth
// options against snap and compiles them. legacyAuth is the old "user:pass"
// Auth option of HTTP binds (one more credential). Errors name the option
// and never echo a password: TG_403 (CIDR), TG_2616 (ip_policy_ids),
// TG_393 (no allow rule), TG_359/TG_360 (basic auth).
func (g *ipGates) newEndpointAccess(snap *snapshot.Snapshot, accountID string, ipr *tunnel.IPRestriction, ba *tunnel.BasicAuth, legacyAuth string) (*endpointAccess, *codes.Error) {
	a := &endpointAccess{gates: g, accountID: accountID}
	if ipr != nil {
		for _, list := range []struct {
			name  string
			cidrs []string
			deny  bool
		}{{"--cidr-allow", ipr.AllowCIDRs, false}, {"--cidr-deny", ipr.DenyCIDRs, true}} {
			for _, c := range list.cidrs {
				p, err := policy.ParseCIDR(c)
				if err != nil {
					return nil, codes.NewError(codes.BindOption, "%s %q: %v.", list.name, c, err)
				}
				a.rules = append(a.rules, policy.IPRule{Prefix: p, Deny: list.deny})
			}
		}
		for _, id := range ipr.IPPolicyIDs {
			p, ok := snap.IPPolicy(id)
			if !ok || p.AccountID != accountID {
				return nil, codes.NewError(codes.IPPolicyIDs, "The IP policy %q does not exist in this account. List them with GET /ip_policies.", id)
			}
			if !slices.Contains(a.policyIDs, id) {
				a.policyIDs = append(a.policyIDs, id)
			}
		}
		if len(a.rules) > 0 || len(a.policyIDs) > 0 {
			m := policy.CompilePolicies(snap, a.policyIDs, a.rules)
			if !m.HasAllow() {
				if len(a.policyIDs) == 0 {
					return nil, codes.NewError(codes.BindDenyOnly, "The endpoint has --cidr-deny rules but no --cidr-allow rule: %s.", denyOnlyHelp)
				}
				return nil, codes.NewError(codes.BindDenyOnly, "The endpoint's CIDRs and IP policies (%s) have no allow rule: %s, or add allow rules to the policies.", strings.Join(a.policyIDs, ", "), denyOnlyHelp)
			}
			if len(a.policyIDs) == 0 {
				a.static = m
			} else {
				a.perSnap.Store(&snapMatcher{snap: snap, m: m})
			}
		}
	}
	basic, err := newBasicAuth(ba, legacyAuth)
	if err != nil {
		return nil, err
	}
	a.basic = basic
	return a, nil
}
