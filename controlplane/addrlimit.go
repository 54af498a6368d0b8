package controlplane

import (
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/tollgate/tollgate/codes"
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

// peek returns key's bucket without creating one or renewing its TTL: nil
// when key has no recent failure.
func (l *addrLimiter) peek(key string) *rate.Limiter {
	if l == nil {
		return nil
	}
	l.start()
	if l.cache == nil {
		return nil
	}
	lim, _ := l.cache.Get(key)
	return lim
}

// Sign-in throttle defaults (Core.AdmitSignIn): per client address, 20
// failed password sign-ins, then one per 6 seconds; per target user (the
// e-mail address given), 10, then one per 30 seconds. Each limiter
// remembers at most DefaultAuthFailureAddrs keys.
const (
	signInAddrPerSec   = 1.0 / 6
	signInAddrBurst    = 20
	signInTargetPerSec = 1.0 / 30
	signInTargetBurst  = 10
)

const msgSignInThrottled = "Too many failed sign-ins"

// AdmitSignIn decides, before the password is hashed, whether a password
// sign-in for target (the normalised e-mail address given, whether or not
// a user has it) from the request's client address may be checked at all.
// It refuses (429, codes.SignInThrottled, Retry-After set on w):
//
//   - an address whose failure budget is spent (per address, IPv6 by /64,
//     the bounded ristretto cache the API's failure budget uses), and
//   - a target whose failure budget is spent, but only from an address
//     that has failed recently itself. An address with no recent failure
//     is always checked, so a user with the right password is never
//     refused because others sprayed their address book from elsewhere;
//     a spray from many addresses gets one guess per address per target
//     while the target's budget is spent.
//
// A refused attempt costs no hash and charges nothing. Call
// ChargeSignInFailure after a checked attempt failed.
func (cp *Core) AdmitSignIn(w http.ResponseWriter, r *http.Request, target string) error {
	addr := addrKey(cp.ClientAddr(r))
	a := cp.rate.signInAddr.peek(addr)
	if a != nil && a.Tokens() < 1 {
		return cp.signInRefused(w, a, "from this address")
	}
	if a == nil || a.Tokens() >= float64(a.Burst()) {
		return nil // no recent failure from here: always checked
	}
	if t := cp.rate.signInTarget.peek(target); t != nil && t.Tokens() < 1 {
		return cp.signInRefused(w, t, "for this user")
	}
	return nil
}

func (cp *Core) signInRefused(w http.ResponseWriter, lim *rate.Limiter, what string) error {
	cp.rate.signInRefused.Add(1)
	wait := time.Duration(float64(time.Second) / float64(lim.Limit()))
	err := tooMany(w, wait, msgSignInThrottled+" "+what+".")
	ae := AsError(err)
	ae.Code = codes.SignInThrottled
	ae.Msg += " Check the address and password, or ask an administrator for a password reset link."
	return ae
}

// ChargeSignInFailure charges one failed password (or TOTP) sign-in to the
// client address and to target (AdmitSignIn). It never refuses: the
// attempt was checked already.
func (cp *Core) ChargeSignInFailure(r *http.Request, target string) {
	for _, c := range []struct {
		l   *addrLimiter
		key string
	}{{cp.rate.signInAddr, addrKey(cp.ClientAddr(r))}, {cp.rate.signInTarget, target}} {
		if c.l != nil {
			c.l.bucket(c.key).Allow()
		}
	}
}

// SignInThrottled returns how many sign-in attempts AdmitSignIn refused
// since the process started.
func (cp *Core) SignInThrottled() uint64 { return cp.rate.signInRefused.Load() }
