package controlplane

import (
	"net/http"
	"net/netip"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/policy"
)

// compiledRestrictions are the IP restrictions of one snapshot, compiled.
type compiledRestrictions struct {
	snap *config.Snapshot
	rs   *policy.Restrictions
}

// restrictionCache holds the newest compiled restrictions; a new snapshot
// replaces them.
type restrictionCache struct {
	cur atomic.Pointer[compiledRestrictions]
}

// apiDryRunRefusals counts API requests an unenforced (enforced: false) api
// IP restriction would have refused, since the process started.
var apiDryRunRefusals atomic.Uint64

// checkAPIRestriction applies the caller's account's `api` IP restrictions
// (reference/platform-behaviour.md §2.2) to the TCP peer address of the
// request — never X-Forwarded-For. An enforced restriction that refuses the
// address answers 403 with config.CodeAPIIPRestricted; an unenforced one
// lets the request through and logs a warning with the restriction's ID
// (the dry run of enforced: false). The restrictions come from the current
// snapshot, compiled once per snapshot.
func (s *Server) checkAPIRestriction(r *http.Request, c *caller) error {
	snap, err := s.Snapshot(r.Context(), 0)
	if err != nil {
		return err
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
	d := cr.rs.Check(c.accountID(), policy.SurfaceAPI, addr)
	switch {
	case !d.Allowed:
		s.log.Info("API request refused by an IP restriction", zap.String("account_id", c.accountID()),
			zap.String("ip_restriction_id", d.RestrictionID), zap.String("client_ip", clientIP(r)))
		return newAPIError(http.StatusForbidden, config.CodeAPIIPRestricted,
			"The IP restriction %s of account %s does not allow API calls from %s. Call from an allowed network, or ask an administrator to change the restriction's IP policies.",
			d.RestrictionID, c.accountID(), clientIP(r))
	case d.RestrictionID != "":
		apiDryRunRefusals.Add(1)
		s.log.Warn("an unenforced API IP restriction would refuse this request; letting it through",
			zap.String("account_id", c.accountID()), zap.String("ip_restriction_id", d.RestrictionID),
			zap.String("client_ip", clientIP(r)))
	}
	return nil
}
