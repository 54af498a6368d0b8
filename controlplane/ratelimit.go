package controlplane

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/tollgate/tollgate/codes"
	"golang.org/x/time/rate"
)

// Defaults of the API rate limits (Config). The hosted platform allows
// 120 requests per minute per account (docs/api-compatibility.md#rate-limits);
// a self-hosted control plane serves automation (Terraform, CI) that is
// burstier, so the default is higher.
const (
	DefaultRateLimit        = 50  // requests per second per account
	DefaultRateBurst        = 100 // requests
	DefaultAuthFailureLimit = 1   // failed authentications per second per client IP
	DefaultAuthFailureBurst = 30  // failed authentications
)

// limiterIdleSweep is how often the limiter maps drop buckets that have
// refilled; maxLimiterKeys bounds each map between sweeps.
const (
	limiterIdleSweep = time.Minute
	maxLimiterKeys   = 100_000
)

// rateLimits holds the API's token buckets: one per account, charged by
// every authenticated request, and one per client IP, charged by every
// failed authentication. The limits are per control-plane process.
type rateLimits struct {
	perAccount *keyedLimiter // nil = unlimited
	perIP      *keyedLimiter // nil = unlimited
}

// newRateLimits builds the limiters Config asks for.
func newRateLimits(cfg Config) *rateLimits {
	return &rateLimits{
		perAccount: newKeyedLimiter(cfg.RateLimit, cfg.RateBurst, DefaultRateLimit, DefaultRateBurst),
		perIP:      newKeyedLimiter(cfg.AuthFailureLimit, cfg.AuthFailureBurst, DefaultAuthFailureLimit, DefaultAuthFailureBurst),
	}
}

// admit authenticates the request (when auth is set) and applies the rate
// limits, returning the caller (nil without auth) or the error to answer:
//
//   - A client IP whose failed authentications have emptied its bucket gets
//     429 before its key is even looked at, so guessing keys is slow
//     however many it tries.
//   - A failed authentication (401: no key, or not a valid one) charges the
//     client IP.
//   - An authenticated request charges its account; an account over its
//     limit gets 429. Requests that need no auth (404 and 405 answers)
//     charge nothing; a client IP that is refused is refused them too.
//
// Every 429 carries Retry-After, in whole seconds, and the API error body
// with codes.APIRateLimited.
func (cp *Core) admit(w http.ResponseWriter, r *http.Request, auth bool) (*Caller, error) {
	rl := cp.rate
	ip := ClientIP(r)
	const ipMsg = "This address sent too many requests that failed authentication; check the API key."
	if err := rl.perIP.check(w, ip, ipMsg); err != nil {
		return nil, err
	}
	if !auth {
		return nil, nil // 404 and 405 answers: no key to check, nothing to guess
	}
	c, err := cp.authenticate(r)
	if err != nil {
		// Only 401s: a 403 means the key is genuine (its owner or account is
		// inactive), which no guessing produces.
		if AsError(err).Status == http.StatusUnauthorized {
			_ = rl.perIP.charge(w, ip, "") // the refusal is the answer; the next attempt pays
		}
		return nil, err
	}
	if err := rl.perAccount.charge(w, c.AccountID(), "The account "+c.AccountID()+" sent more API requests than its rate limit allows."); err != nil {
		return nil, err
	}
	return c, nil
}

// ChargeAuthFailure charges a failed authentication that Serve did not see
// (a dashboard sign-in, a wrong invitation token) to the client IP's
// bucket, as admit charges a 401: the next attempt pays.
func (cp *Core) ChargeAuthFailure(w http.ResponseWriter, r *http.Request) {
	_ = cp.rate.perIP.charge(w, ClientIP(r), "")
}

// CheckAuthFailures refuses, with 429 and Retry-After, a client IP whose
// failed authentications have emptied its bucket, before it may try
// again; msg says what the address did. It takes no token.
func (cp *Core) CheckAuthFailures(w http.ResponseWriter, r *http.Request, msg string) error {
	return cp.rate.perIP.check(w, ClientIP(r), msg)
}

// ClientIP is the TCP peer's address (never X-Forwarded-For), IPv4-mapped
// IPv6 folded to IPv4.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return host
}

// keyedLimiter is a token bucket per key, with buckets that have refilled
// dropped on a sweep (a full bucket is the same as a new one).
type keyedLimiter struct {
	limit rate.Limit
	burst int
	idle  time.Duration // a bucket untouched this long is full again

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

// newKeyedLimiter returns a limiter of perSec requests per second with
// burst, or the defaults for zero values; a negative perSec means no limit
// (nil).
func newKeyedLimiter(perSec float64, burst int, defPerSec float64, defBurst int) *keyedLimiter {
	if perSec < 0 {
		return nil
	}
	if perSec == 0 {
		perSec = defPerSec
	}
	if burst <= 0 {
		burst = defBurst
	}
	idle := time.Duration(float64(burst)/perSec*float64(time.Second)) + time.Second
	return &keyedLimiter{limit: rate.Limit(perSec), burst: burst, idle: idle,
		buckets: make(map[string]*bucket), lastSweep: time.Now()}
}

func (k *keyedLimiter) get(key string, now time.Time) *rate.Limiter {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now.Sub(k.lastSweep) > limiterIdleSweep || len(k.buckets) >= maxLimiterKeys {
		k.sweep(now)
	}
	b, ok := k.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.lastSeen = now
	return b.lim
}

// sweep drops refilled buckets; if the map is still full (many keys busy at
// once) it drops arbitrary ones, which only ever forgives.
func (k *keyedLimiter) sweep(now time.Time) {
	k.lastSweep = now
	for key, b := range k.buckets {
		if now.Sub(b.lastSeen) > k.idle {
			delete(k.buckets, key)
		}
	}
	for key := range k.buckets {
		if len(k.buckets) < maxLimiterKeys {
			break
		}
		delete(k.buckets, key)
	}
}

// charge takes a token for key, or returns a 429 *Error (with
// Retry-After set on w) when none is left. msg "" makes no error, for
// charges whose refusal is answered otherwise.
func (k *keyedLimiter) charge(w http.ResponseWriter, key, msg string) error {
	if k == nil {
		return nil
	}
	now := time.Now()
	res := k.get(key, now).ReserveN(now, 1)
	if !res.OK() {
		return nil // burst 0 is impossible: newKeyedLimiter sets >= 1
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		if msg == "" {
			return nil
		}
		return tooMany(w, d, msg)
	}
	return nil
}

// check refuses key with 429 when its bucket is empty, without taking a
// token.
func (k *keyedLimiter) check(w http.ResponseWriter, key, msg string) error {
	if k == nil {
		return nil
	}
	now := time.Now()
	lim := k.get(key, now)
	if lim.TokensAt(now) >= 1 {
		return nil
	}
	d := time.Duration((1 - lim.TokensAt(now)) / float64(k.limit) * float64(time.Second))
	return tooMany(w, d, msg)
}

// tooMany sets Retry-After (whole seconds, at least 1) and returns the 429.
func tooMany(w http.ResponseWriter, wait time.Duration, msg string) error {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return Errorf(http.StatusTooManyRequests, codes.APIRateLimited,
		"%s Retry after %d second(s).", msg, secs)
}
