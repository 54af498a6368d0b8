package policy

import (
	"net/netip"
	"testing"

	"github.com/tollgate/tollgate/snapshot"
)

func TestRestrictions(t *testing.T) {
	snap, err := snapshot.New(snapshot.Data{
		IPPolicies: []snapshot.IPPolicy{
			{ID: "ipp_office", AccountID: "acct_a", Rules: []snapshot.IPPolicyRule{{CIDR: "10.0.0.0/8", Action: "allow"}}},
			{ID: "ipp_block", AccountID: "acct_a", Rules: []snapshot.IPPolicyRule{{CIDR: "10.6.6.0/24", Action: "deny"}}},
			{ID: "ipp_v6", AccountID: "acct_a", Rules: []snapshot.IPPolicyRule{{CIDR: "2001:db8::/32", Action: "allow"}}},
			{ID: "ipp_empty", AccountID: "acct_a"},
		},
		IPRestrictions: []snapshot.IPRestriction{
			{ID: "ipx_agent", AccountID: "acct_a", Type: "agent", Enforced: true, IPPolicyIDs: []string{"ipp_office", "ipp_block", "ipp_v6"}},
			{ID: "ipx_api_dry", AccountID: "acct_a", Type: "api", Enforced: false, IPPolicyIDs: []string{"ipp_office"}},
			{ID: "ipx_ep_empty", AccountID: "acct_a", Type: "endpoints", Enforced: true, IPPolicyIDs: []string{"ipp_empty"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rs := CompileRestrictions(snap)
	check := func(acct string, s Surface, addr string, allowed bool, id string) {
		t.Helper()
		d := rs.Check(acct, s, netip.MustParseAddr(addr))
		if d.Allowed != allowed || d.RestrictionID != id {
			t.Errorf("Check(%s, %s, %s) = %+v; want allowed=%v restriction=%q", acct, s, addr, d, allowed, id)
		}
	}
	check("acct_a", SurfaceAgent, "10.1.1.1", true, "")
	check("acct_a", SurfaceAgent, "::ffff:10.1.1.1", true, "")
	check("acct_a", SurfaceAgent, "10.6.6.6", false, "ipx_agent") // deny in a second policy wins
	check("acct_a", SurfaceAgent, "192.0.2.1", false, "ipx_agent")
	check("acct_a", SurfaceAgent, "2001:db8::1", true, "")
	check("acct_a", SurfaceAPI, "192.0.2.1", true, "ipx_api_dry") // not enforced: logged only
	check("acct_a", SurfaceAPI, "10.0.0.1", true, "")
	check("acct_a", SurfaceEndpoints, "10.0.0.1", false, "ipx_ep_empty") // an empty policy admits nobody
	check("acct_a", SurfaceDashboard, "192.0.2.1", true, "")             // no restriction on the surface
	check("acct_b", SurfaceAgent, "192.0.2.1", true, "")                 // another account

	var nilRS *Restrictions
	if d := nilRS.Check("acct_a", SurfaceAgent, netip.MustParseAddr("192.0.2.1")); !d.Allowed {
		t.Error("nil Restrictions refused")
	}
	a := netip.MustParseAddr("192.0.2.1")
	if n := testing.AllocsPerRun(1000, func() { _ = rs.Check("acct_a", SurfaceAgent, a) }); n != 0 {
		t.Errorf("Check allocates %v times", n)
	}
}
