package controlplane

import (
	"net/http"
	"net/netip"
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

// apiDryRunRefusals and dashboardDryRunRefusals count requests an
// unenforced (enforced: false) api or dashboard IP restriction would have
// refused, since the process started.
var apiDryRunRefusals, dashboardDryRunRefusals atomic.Uint64

// restrictionDecision applies the account's IP restrictions of one surface
// (reference/platform-behaviour.md §2.2) to the TCP peer address of the
// request — never X-Forwarded-For. The restrictions come from the current
// snapshot, compiled once per snapshot. An unenforced restriction that would
// refuse the address is logged as a warning with its ID and counted in
// dryRuns, and the decision lets the request through (the dry run of
// enforced: false).
func (s *Server) restrictionDecision(r *http.Request, accountID string, surface policy.Surface, dryRuns *atomic.Uint64) (policy.IPDecision, error) {
	snap, err := s.Snapshot(r.Context(), 0)
	if err != nil {
		return policy.IPDecision{}, err
	}
	cr := s.restrictions.cur.Load()
	if cr == nil || cr.snap != snap {
		cr = &compiledRestrictions{snap: snap, rs: policy.CompileRestrictions(snap)}
		s.restrictions.cur.Store(cr)
	}
	addr, err := netip.ParseAddr(clientIP(r))
	if err != nil {
		addr = netip.Addr{} // not an IP (a test transport): refused by any restriction
	}
	d := cr.rs.Check(accountID, surface, addr)
	if d.Allowed && d.RestrictionID != "" {
		dryRuns.Add(1)
		s.log.Warn("an unenforced IP restriction would refuse this request; letting it through",
			zap.String("surface", string(surface)), zap.String("account_id", accountID),
			zap.String("ip_restriction_id", d.RestrictionID), zap.String("client_ip", clientIP(r)))
	}
	return d, nil
}

// checkAPIRestriction applies the caller's account's `api` IP restrictions
// (restrictionDecision). An enforced restriction that refuses the address
// answers 403 with codes.APIIPRestricted.
func (s *Server) checkAPIRestriction(r *http.Request, c *caller) error {
	d, err := s.restrictionDecision(r, c.accountID(), policy.SurfaceAPI, &apiDryRunRefusals)
	if err != nil || d.Allowed {
		return err
	}
	s.log.Info("API request refused by an IP restriction", zap.String("account_id", c.accountID()),
		zap.String("ip_restriction_id", d.RestrictionID), zap.String("client_ip", clientIP(r)))
	return newAPIError(http.StatusForbidden, codes.APIIPRestricted,
		"The IP restriction %s of account %s does not allow API calls from %s. Call from an allowed network, or ask an administrator to change the restriction's IP policies.",
		d.RestrictionID, c.accountID(), clientIP(r))
}
