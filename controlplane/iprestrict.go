package controlplane

import (
	"net/http"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/snapshot"
)

// compiledRestrictions are the IP restrictions of one snapshot, compiled.
type compiledRestrictions struct {
	snap *snapshot.Snapshot
	rs   *policy.Restrictions
}

// restrictionCache holds the newest compiled restrictions; a new snapshot
// replaces them.
type restrictionCache struct {
	cur atomic.Pointer[compiledRestrictions]
}

// dryRunRefusals counts, per surface, the requests an unenforced
// (enforced: false) api or dashboard IP restriction would have refused,
// since the process started. The map is never written after init.
var dryRunRefusals = map[policy.Surface]*atomic.Uint64{
	policy.SurfaceAPI:       new(atomic.Uint64),
	policy.SurfaceDashboard: new(atomic.Uint64),
}

// DryRunRefusals returns how many requests an unenforced (enforced: false)
// IP restriction of surface (api or dashboard) would have refused since the
// process started: those Restriction let through.
func DryRunRefusals(surface policy.Surface) uint64 {
	if n := dryRunRefusals[surface]; n != nil {
		return n.Load()
	}
	return 0
}

// Restriction applies the account's IP restrictions of one surface
// (docs/access-control.md#ip-restriction-surfaces) to the client address
// (ClientAddr): the TCP peer address, or, only from a trusted proxy, what
// X-Forwarded-For says. The restrictions come from the current
// snapshot, compiled once per snapshot. An unenforced restriction that would
// refuse the address is logged as a warning with its ID and counted
// (DryRunRefusals), and the decision lets the request through (the dry run
// of enforced: false). The caller answers a refusal in its own words.
func (cp *Core) Restriction(r *http.Request, accountID string, surface policy.Surface) (policy.IPDecision, error) {
	snap, err := cp.Snapshot(r.Context(), 0)
	if err != nil {
		return policy.IPDecision{}, err
	}
	cr := cp.restrictions.cur.Load()
	if cr == nil || cr.snap != snap {
		cr = &compiledRestrictions{snap: snap, rs: policy.CompileRestrictions(snap)}
		cp.restrictions.cur.Store(cr)
	}
	addr := cp.ClientAddr(r) // zero when not an IP (a test transport): refused by any restriction
	d := cr.rs.Check(accountID, surface, addr)
	if d.Allowed && d.RestrictionID != "" {
		if n := dryRunRefusals[surface]; n != nil {
			n.Add(1)
		}
		cp.log.Warn("an unenforced IP restriction would refuse this request; letting it through",
			zap.String("surface", string(surface)), zap.String("account_id", accountID),
			zap.String("ip_restriction_id", d.RestrictionID), zap.String("client_ip", cp.ClientIP(r)))
	}
	return d, nil
}

// checkAPIRestriction applies the caller's account's `api` IP restrictions
// (Restriction). An enforced restriction that refuses the address answers
// 403 with codes.APIIPRestricted.
func (cp *Core) checkAPIRestriction(r *http.Request, c *Caller) error {
	d, err := cp.Restriction(r, c.AccountID(), policy.SurfaceAPI)
	if err != nil || d.Allowed {
		return err
	}
	cp.log.Info("API request refused by an IP restriction", zap.String("account_id", c.AccountID()),
		zap.String("ip_restriction_id", d.RestrictionID), zap.String("client_ip", cp.ClientIP(r)))
	return Errorf(http.StatusForbidden, codes.APIIPRestricted,
		"The IP restriction %s of account %s does not allow API calls from %s. Call from an allowed network, or ask an administrator to change the restriction's IP policies.",
		d.RestrictionID, c.AccountID(), cp.ClientIP(r))
}
