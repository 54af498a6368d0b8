package edge

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// benchRules returns n CIDR rules: /24 and /64 allows with every tenth a
// deny of one address inside, deterministic.
func benchRules(n int, seed uint64) (allow, deny []string) {
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range n {
		if i%2 == 0 {
			a := netip.AddrFrom4([4]byte{byte(r.IntN(223) + 1), byte(r.IntN(256)), byte(r.IntN(256)), 0})
			if i%10 == 0 {
				deny = append(deny, netip.PrefixFrom(a.Next(), 32).String())
			} else {
				allow = append(allow, netip.PrefixFrom(a, 24).String())
			}
			continue
		}
		var b [16]byte
		b[0], b[1] = 0x20, 0x01
		for j := 2; j < 8; j++ {
			b[j] = byte(r.IntN(256))
		}
		allow = append(allow, netip.PrefixFrom(netip.AddrFrom16(b), 64).String())
	}
	return allow, deny
}

// BenchmarkAdmitIP is the edge's whole per-connection IP decision with
// 10,000 rules in the account's endpoints restriction (one IP policy) and
// 10,000 in the endpoint's own --cidr-allow/--cidr-deny plus an IP policy:
// the snapshot and restriction loads, the restriction check and the
// endpoint's matcher.
func BenchmarkAdmitIP(b *testing.B) {
	allowR, denyR := benchRules(10000, 1)
	var rules []string
	for _, c := range allowR {
		rules = append(rules, "allow "+c)
	}
	for _, c := range denyR {
		rules = append(rules, "deny "+c)
	}
	rules = append(rules, "allow 127.0.0.0/8", "allow ::1/128")
	e := newPolicyEdge(b, snapshot.Data{
		IPPolicies: []snapshot.IPPolicy{testPolicy("ipp_r", "acct_a", rules...), testPolicy("ipp_e", "acct_a", "allow 192.0.2.0/24")},
		IPRestrictions: []snapshot.IPRestriction{
			{ID: "ipx_1", AccountID: "acct_a", Type: "endpoints", Enforced: true, IPPolicyIDs: []string{"ipp_r"}},
		},
	})
	allowE, denyE := benchRules(10000, 2)
	allowE = append(allowE, "127.0.0.0/8", "::1/128")
	a, err := e.gates.newEndpointAccess(e.snap.Load(), "acct_a",
		&tunnel.IPRestriction{AllowCIDRs: allowE, DenyCIDRs: denyE, IPPolicyIDs: []string{"ipp_e"}}, nil, "")
	if err != nil {
		b.Fatal(err)
	}
	ep := &Endpoint{url: "https://x", access: a}
	for _, tc := range []struct{ name, addr string }{
		{"ipv4", "127.0.0.1"}, {"ipv4-mapped", "::ffff:127.0.0.1"}, {"ipv6", "::1"}, {"ipv4-refused", "198.51.100.7"},
	} {
		addr := netip.MustParseAddr(tc.addr)
		want := tc.name != "ipv4-refused"
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if e.gates.admit(ep, addr) != want {
					b.Fatal(fmt.Sprint("wrong decision for ", addr))
				}
			}
		})
	}
}

// BenchmarkBasicAuthCheck is one request's basic-auth check against 10
// credentials.
func BenchmarkBasicAuthCheck(b *testing.B) {
	ba := &tunnel.BasicAuth{}
	for i := range 10 {
		ba.Credentials = append(ba.Credentials, tunnel.BasicAuthCredential{Username: fmt.Sprint("user", i), CleartextPassword: "correct-horse-battery"})
	}
	bauth, err := newBasicAuth(ba, "")
	if err != nil {
		b.Fatal(err)
	}
	hdr := basicHeader("user9", "correct-horse-battery")
	b.ReportAllocs()
	for b.Loop() {
		if !bauth.check(hdr, 1) {
			b.Fatal("refused")
		}
	}
}
