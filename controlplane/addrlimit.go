package controlplane

import (
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/time/rate"
)

// addrLimiter is a token bucket per client address, charged only by failed
// attempts, kept in a bounded cache (ristretto, TinyLFU admission): under a
// spray of addresses it holds at most max buckets, and an address that
// keeps failing is the one the cache keeps. A bucket untouched until it
// has refilled expires (a full bucket is the same as a new one). IPv6
// clients are keyed by their /64, the smallest prefix an end site gets
// (RFC 6177), so one host cannot take a fresh bucket per address.
//
// The cache, and its goroutines, start on the first failure (New starts
// nothing); close stops them.
type addrLimiter struct {
	limit rate.Limit
	burst int
	idle  time.Duration // TTL of a bucket since its last failure
	max   int64         // buckets at most

	once    sync.Once
	cache   *ristretto.Cache[string, *rate.Limiter] // nil until the first failure, or if it could not be made
	mu      sync.Mutex                              // serialises creating a bucket, so concurrent failures share it
	refused atomic.Uint64
}

// newAddrLimiter returns a limiter of perSec failures per second with
// burst, remembering at most maxAddrs addresses, or the defaults for zero
// values; a negative perSec means no limit (nil).
func newAddrLimiter(perSec float64, burst, maxAddrs int) *addrLimiter {
	if perSec < 0 {
		return nil
	}
	if perSec == 0 {
		perSec = DefaultAuthFailureLimit
	}
	if burst <= 0 {
		burst = DefaultAuthFailureBurst
	}
	if maxAddrs <= 0 {
		maxAddrs = DefaultAuthFailureAddrs
	}
	return &addrLimiter{limit: rate.Limit(perSec), burst: burst, idle: refillTime(perSec, burst), max: int64(maxAddrs)}
}

// addrKey is the bucket key of a client address: the address, or for IPv6
// its /64; "" for the zero Addr (a RemoteAddr that is not an IP).
func addrKey(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	if a.Is6() && !a.Is4In6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.Unmap().String()
}

// start makes the cache, once.
func (l *addrLimiter) start() {
	l.once.Do(func() {
		c, err := ristretto.NewCache(&ristretto.Config[string, *rate.Limiter]{
			NumCounters:        10 * l.max, // ristretto's advice: 10× the items kept
			MaxCost:            l.max,      // each bucket costs 1
			BufferItems:        64,
			IgnoreInternalCost: true,
		})
		if err == nil {
			l.cache = c
		}
	})
}

// bucket returns the address's bucket, creating it on a miss; the TTL is
// renewed, as the caller is about to charge it.
func (l *addrLimiter) bucket(key string) *rate.Limiter {
	l.start()
	c := l.cache
	if c == nil {
		return rate.NewLimiter(l.limit, l.burst) // closed, or no cache: not limited
	}
	if lim, ok := c.Get(key); ok {
		c.SetWithTTL(key, lim, 1, l.idle) // may be dropped under contention: the TTL is only extended
		return lim
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim, ok := c.Get(key); ok {
		return lim
	}
	lim := rate.NewLimiter(l.limit, l.burst)
	if c.SetWithTTL(key, lim, 1, l.idle) {
		c.Wait() // visible to the next Get; only a new address pays this
	}
	return lim
}

// fail charges one failure of address a: nil while its budget lasts, else
// the 429 *Error with msg (Retry-After set on w).
func (l *addrLimiter) fail(w http.ResponseWriter, a netip.Addr, msg string) error {
	if l == nil {
		return nil
	}
	if err := take(w, l.bucket(addrKey(a)), msg); err != nil {
		l.refused.Add(1)
		return err
	}
	return nil
}

// throttled returns how many failures were answered 429.
func (l *addrLimiter) throttled() uint64 {
	if l == nil {
		return 0
	}
	return l.refused.Load()
}

// close stops the cache's goroutines; later failures are not limited.
func (l *addrLimiter) close() {
	if l == nil {
		return
	}
	l.once.Do(func() {}) // no cache after close
	if l.cache != nil {
		l.cache.Close()
	}
}
