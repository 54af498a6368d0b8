package controlplane

import (
	"fmt"
	"testing"

	"golang.org/x/time/rate"
)

// TestSignInThrottleBoundedUnderSpray: a password spray over many target
// addresses (e-mail) and client addresses keeps at most the configured
// number of buckets in each sign-in limiter, and a target or address that
// keeps failing stays throttled.
func TestSignInThrottleBoundedUnderSpray(t *testing.T) {
	const max = 500
	rl := newRateLimits(Config{AuthFailureAddrs: max})
	t.Cleanup(func() { rl.signInAddr.close(); rl.signInTarget.close() })
	for i := 0; i < signInTargetBurst; i++ {
		rl.signInTarget.bucket("victim@example.com").Allow()
	}
	const spray = 20_000
	for i := 0; i < spray; i++ {
		rl.signInTarget.bucket(fmt.Sprintf("user%d@example.com", i)).Allow()
		rl.signInAddr.bucket(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&0xff, i&0xff)).Allow()
	}
	for _, l := range []*addrLimiter{rl.signInTarget, rl.signInAddr} {
		l.cache.Wait()
		n := 0
		l.cache.IterValues(func(*rate.Limiter) bool { n++; return false })
		if n > max {
			t.Fatalf("%d buckets after a spray of %d keys, bound %d", n, spray, max)
		}
	}
	if v := rl.signInTarget.peek("victim@example.com"); v != nil && v.Tokens() >= 1 {
		t.Fatalf("the sprayed victim has %.1f sign-ins left", v.Tokens())
	}
}
