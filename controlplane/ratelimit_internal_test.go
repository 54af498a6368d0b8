package controlplane

import (
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestKeyedLimiterSweepForgetsRefilledBuckets(t *testing.T) {
	k := newKeyedLimiter(1000, 1, 0, 0)
	now := time.Now()
	for i := 0; i < 10; i++ {
		k.get(strconv.Itoa(i), now)
	}
	k.sweep(now.Add(k.idle + time.Millisecond))
	if n := len(k.buckets); n != 0 {
		t.Fatalf("%d buckets left after they all refilled", n)
	}
	k.get("busy", now)
	k.sweep(now) // not idle yet
	if len(k.buckets) != 1 {
		t.Fatal("a busy bucket was dropped")
	}
}

func TestAddrKeyGroupsIPv6By64(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
	} {
		if ka, kb := addrKey(netip.MustParseAddr(tc.a)), addrKey(netip.MustParseAddr(tc.b)); ka != kb {
			t.Errorf("%s → %q, %s → %q: want one bucket", tc.a, ka, tc.b, kb)
		}
	}
	if addrKey(netip.MustParseAddr("2001:db8:1:2::1")) == addrKey(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("two /64s share a bucket")
	}
	if addrKey(netip.MustParseAddr("192.0.2.1")) == addrKey(netip.MustParseAddr("192.0.2.2")) {
		t.Error("two IPv4 addresses share a bucket")
	}
}

// Under a spray of addresses the limiter holds at most its bound. Which
// buckets it keeps is TinyLFU's choice (frequent failers win, but its
// access counts are sampled, so an evicted address at worst starts a fresh
// budget — each sprayed address has its own budget anyway: a spray is many
// clients to a per-address limit). What no spray may do is grow memory.
func TestAddrLimiterBoundedUnderSpray(t *testing.T) {
	const maxAddrs = 1000
	l := newAddrLimiter(0.001, 3, maxAddrs) // no refill during the test
	t.Cleanup(l.close)
	w := httptest.NewRecorder()
	offender := netip.MustParseAddr("198.51.100.1")
	for i := 0; i < 3; i++ {
		if err := l.fail(w, offender, "x"); err != nil {
			t.Fatalf("failure %d refused within the burst: %v", i, err)
		}
	}
	if l.fail(w, offender, "x") == nil {
		t.Fatal("an offender past its budget was let through")
	}
	const spray = 50_000
	for i := 0; i < spray; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		_ = l.fail(w, a, "x")
	}
	for i := 0; i < spray; i++ { // IPv6: one bucket per /64, whatever the rest
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, byte(i >> 8), byte(i), 8: byte(i >> 8), 9: byte(i)})
		_ = l.fail(w, a, "x")
	}
	l.cache.Wait()
	n := 0
	l.cache.IterValues(func(*rate.Limiter) bool { n++; return false })
	if n > maxAddrs {
		t.Fatalf("%d buckets after a spray of %d addresses, bound %d", n, 2*spray, maxAddrs)
	}
	if got := l.throttled(); got < 1 {
		t.Fatalf("throttled = %d", got)
	}
}
