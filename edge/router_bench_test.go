package edge

import (
	"strconv"
	"testing"
)

// benchRouter returns a router with exact exact routes
// ("app<i>.example.com") and wild wildcard routes ("*.team<i>.example.org").
func benchRouter(b *testing.B, exact, wild int) *router {
	b.Helper()
	r := newRouter()
	for i := range exact {
		if _, _, ok := r.bind(&Endpoint{key: "app" + strconv.Itoa(i) + ".example.com", proto: "https"}, nil); !ok {
			b.Fatal("bind refused")
		}
	}
	for i := range wild {
		if _, _, ok := r.bind(&Endpoint{key: "*.team" + strconv.Itoa(i) + ".example.org", proto: "https"}, nil); !ok {
			b.Fatal("bind refused")
		}
	}
	return r
}

// BenchmarkRouterPick: the per-request route lookup (router.pick) with
// 10,000 exact and 1,000 wildcard routes: a name bound exactly, a name
// only a wildcard covers, and a name nothing serves; and the exact hit
// with no wildcard routes at all, for comparison. None allocates.
func BenchmarkRouterPick(b *testing.B) {
	cases := []struct {
		name        string
		exact, wild int
		host        string
		found       bool
	}{
		{"exact-no-wildcards", 10000, 0, "app5000.example.com", true},
		{"exact", 10000, 1000, "app5000.example.com", true},
		{"wildcard", 10000, 1000, "pr-7.team500.example.org", true},
		{"miss", 10000, 1000, "nobody.example.net", false},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			r := benchRouter(b, tc.exact, tc.wild)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, ok := r.pick(tc.host); ok != tc.found {
					b.Fatalf("pick(%s) = %v", tc.host, ok)
				}
			}
		})
	}
}

// TestRouterPickAllocatesNothing: the per-request lookup allocates
// nothing, exact or by wildcard.
func TestRouterPickAllocatesNothing(t *testing.T) {
	r := newRouter()
	for _, k := range []string{"app.example.com", "*.example.com"} {
		r.bind(&Endpoint{key: k, proto: "https"}, nil)
	}
	for _, host := range []string{"app.example.com", "other.example.com", "nobody.example.net"} {
		if n := testing.AllocsPerRun(100, func() { r.pick(host) }); n != 0 {
			t.Errorf("pick(%s) allocates %v times", host, n)
		}
	}
}
