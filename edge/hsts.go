package edge

import (
	"sync/atomic"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/snapshot"
)

// HSTS at the edge (docs/tls.md#hsts): the Strict-Transport-Security field
// of an HTTPS endpoint's responses is decided per request, in this order:
//
//  1. the reserved domain that covers the name (the exact name, else
//     "*.<parent>" one label up, as for min_tls_version) when its hsts is
//     set: the operator's setting, which wins over everything else, and
//     follows the snapshot while the endpoint stays bound;
//  2. else the endpoint's own HSTS bind option (tollgate http --hsts);
//  3. else nothing: the upstream's own field, if any, passes unchanged.
//
// When 1 or 2 applies, the upstream's fields are removed and the edge's is
// the only one (a browser heeds only the first, RFC 6797 §8.1). The field
// goes only on responses over TLS, never on the plain-HTTP redirect
// listener (RFC 6797 §7.2); httpproxy does the writing.

// endpointHSTS is an HTTPS endpoint's HSTS decision, recomputed once per
// snapshot: a request reads one atomic pointer and allocates nothing.
type endpointHSTS struct {
	own  string // the endpoint's option, canonical; "" = none
	host string // the endpoint's name
	snap *snapshotHolder
	cur  atomic.Pointer[hstsDecision]
}

type hstsDecision struct {
	snap  *snapshot.Snapshot
	value string
}

// newEndpointHSTS validates an endpoint's HSTS option (policy.ParseHSTS;
// "" = none) and returns its decision for host, and the option in
// canonical form to echo to the agent. A bad option refuses the bind with
// codes.BindHSTS.
func newEndpointHSTS(option, host string, snap *snapshotHolder) (*endpointHSTS, string, *codes.Error) {
	own, err := policy.CanonicalHSTS(option)
	if err != nil {
		return nil, "", codes.NewError(codes.BindHSTS,
			"The HSTS option is not valid: %v. Use \"max-age=SECONDS[; includeSubDomains][; preload]\".", err)
	}
	return &endpointHSTS{own: own, host: host, snap: snap}, own, nil
}

// value returns the Strict-Transport-Security value for the endpoint's
// responses under the current snapshot; "" leaves the upstream's.
func (h *endpointHSTS) value() string {
	s := h.snap.Load()
	if d := h.cur.Load(); d != nil && d.snap == s {
		return d.value
	}
	v := h.own
	if rd, ok := s.CoveringReservedDomain(h.host); ok && rd.HSTS != "" {
		if c, err := policy.CanonicalHSTS(rd.HSTS); err == nil {
			v = c
		}
	}
	h.cur.Store(&hstsDecision{snap: s, value: v})
	return v
}

// HSTS implements httpproxy.HSTSPolicy: the Strict-Transport-Security
// value for the endpoint's HTTPS responses now, "" for none (the
// upstream's passes).
func (ep *Endpoint) HSTS() string {
	if ep.hsts == nil {
		return ""
	}
	return ep.hsts.value()
}

var _ httpproxy.HSTSPolicy = (*Endpoint)(nil)
