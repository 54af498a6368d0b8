package controlplane

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/tollgate/tollgate/codes"
)

// Defaults of the API rate limits (Config). The hosted platform allows
// 120 requests per minute per account (docs/api-compatibility.md#rate-limits);
// a self-hosted control plane serves automation (Terraform, CI) that is
// burstier, so the default is higher.
const (
	DefaultRateLimit        = 50     // requests per second per account
	DefaultRateBurst        = 100    // requests
	DefaultAuthFailureLimit = 1      // failed authentications per second per client address
	DefaultAuthFailureBurst = 30     // failed authentications
	DefaultAuthFailureAddrs = 65_536 // client addresses whose failures are remembered, per kind
)

// limiterIdleSweep is how often the per-account limiter drops buckets that
// have refilled; maxLimiterKeys bounds it between sweeps. Its keys are
// accounts that authenticated, so no client can spray them.
const (
	limiterIdleSweep = time.Minute
	maxLimiterKeys   = 100_000
)

// Messages of the 429 answers to addresses past their failure budget.
const (
	msgAPIKeyFailures = "This address sent too many requests that failed authentication; check the API key."
	msgEdgeFailures   = "This address sent too many requests with a wrong edge secret; check the edge's --control-secret-file."
)

// rateLimits holds the API's token buckets: one per account, charged by
// every authenticated request, and per client address two failure
// budgets, each charged only by failed attempts: guesses of API keys and
// invitation tokens (API and dashboard), and wrong edge secrets (edge
// API). The limits are per control-plane process.
type rateLimits struct {
	perAccount   *keyedLimiter // nil = unlimited
	keyFailures  *addrLimiter  // nil = unlimited
	edgeFailures *addrLimiter  // nil = unlimited
	// Failed password sign-ins per address and per target user
	// (AdmitSignIn); never nil.
	signInAddr, signInTarget *addrLimiter
	signInRefused            atomic.Uint64
}

// newRateLimits builds the limiters Config asks for.
func newRateLimits(cfg Config) *rateLimits {
	return &rateLimits{
		perAccount:   newKeyedLimiter(cfg.RateLimit, cfg.RateBurst, DefaultRateLimit, DefaultRateBurst),
		keyFailures:  newAddrLimiter(cfg.AuthFailureLimit, cfg.AuthFailureBurst, cfg.AuthFailureAddrs),
		edgeFailures: newAddrLimiter(cfg.AuthFailureLimit, cfg.AuthFailureBurst, cfg.AuthFailureAddrs),
		signInAddr:   newAddrLimiter(signInAddrPerSec, signInAddrBurst, cfg.AuthFailureAddrs),
		signInTarget: newAddrLimiter(signInTargetPerSec, signInTargetBurst, cfg.AuthFailureAddrs),
	}
}

// admit authenticates the request (when auth is set) and applies the rate
// limits, returning the caller (nil without auth) or the error to answer:
//
//   - The API key is always checked first: a valid key is never refused
//     because of failures from its address, whoever made them (several
//     clients share an address behind NAT, a load balancer or a proxy).
//   - A failed authentication (401: no key, or not a valid one) charges
//     the client address's failure budget; once that is spent, failures
//     are answered 429 with Retry-After instead of 401. A 403 (a genuine
//     key whose owner or account is inactive) is no guess and charges
//     nothing.
//   - An authenticated request charges its account; an account over its
//     limit gets 429. Requests that need no auth (404 and 405 answers)
//     charge nothing and are never refused.
//
// Why this still stops guessing: an API key's (and an invitation token's)
// secret is 32 random base62 characters, about 190 bits
// (authn.NewCredential), so no rate of guesses finds one; what the budget
// bounds is what a failing client costs and how fast it is told to stop.
// Every 429 carries Retry-After, in whole seconds, and the API error body
// with codes.APIRateLimited.
func (cp *Core) admit(w http.ResponseWriter, r *http.Request, auth bool) (*Caller, error) {
	if !auth {
		return nil, nil // 404 and 405 answers: no key to check, nothing to guess
	}
	c, err := cp.authenticate(r)
	if err != nil {
		if AsError(err).Status == http.StatusUnauthorized {
			if tooMany := cp.ChargeAuthFailure(w, r, msgAPIKeyFailures); tooMany != nil {
				return nil, tooMany
			}
		}
		return nil, err
	}
	if err := cp.rate.perAccount.charge(w, c.AccountID(), "The account "+c.AccountID()+" sent more API requests than its rate limit allows."); err != nil {
		return nil, err
	}
	return c, nil
}

// ChargeAuthFailure charges one failed attempt at a user credential (a
// wrong API key at the API or the dashboard's sign-in, a wrong invitation
// token) to the client address's budget (ClientAddr). It returns nil while
// the budget lasts — answer the failure as usual — and, once it is spent,
// a 429 *Error with codes.APIRateLimited, msg and Retry-After set on w, to
// answer instead. Call it only after the credential was checked and found
// wrong: a valid credential is never charged or refused.
func (cp *Core) ChargeAuthFailure(w http.ResponseWriter, r *http.Request, msg string) error {
	return cp.rate.keyFailures.fail(w, cp.ClientAddr(r), msg)
}

// ChargeEdgeAuthFailure is ChargeAuthFailure for a wrong or missing edge
// secret at the edge API: a budget of its own, so that neither failed API
// keys nor failed edge secrets from an address hold up the snapshot feed
// of edges that present the right secret.
func (cp *Core) ChargeEdgeAuthFailure(w http.ResponseWriter, r *http.Request) error {
	return cp.rate.edgeFailures.fail(w, cp.ClientAddr(r), msgEdgeFailures)
}

// AuthThrottled returns how many failed attempts were answered 429 since
// the process started: at user credentials (API keys, invitation tokens)
// and at the edge secret.
func (cp *Core) AuthThrottled() (userCredentials, edgeSecret uint64) {
	return cp.rate.keyFailures.throttled(), cp.rate.edgeFailures.throttled()
}

// rateLimited returns how many authenticated requests the per-account
// rate limit answered 429 since the process started.
func (cp *Core) rateLimited() uint64 {
	if cp.rate.perAccount == nil {
		return 0
	}
	return cp.rate.perAccount.refused.Load()
}

// Close releases the per-address failure caches (their goroutines start on
// the first failure). Call it once the servers have stopped; failures
// after it are no longer limited.
func (cp *Core) Close() {
	cp.rate.keyFailures.close()
	cp.rate.edgeFailures.close()
	cp.rate.signInAddr.close()
	cp.rate.signInTarget.close()
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

	refused atomic.Uint64 // requests answered 429
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
	return &keyedLimiter{limit: rate.Limit(perSec), burst: burst, idle: refillTime(perSec, burst),
		buckets: make(map[string]*bucket), lastSweep: time.Now()}
}

// refillTime is how long an empty bucket takes to fill, plus a second.
func refillTime(perSec float64, burst int) time.Duration {
	return time.Duration(float64(burst)/perSec*float64(time.Second)) + time.Second
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
// Retry-After set on w) when none is left.
func (k *keyedLimiter) charge(w http.ResponseWriter, key, msg string) error {
	if k == nil {
		return nil
	}
	err := take(w, k.get(key, time.Now()), msg)
	if err != nil {
		k.refused.Add(1)
	}
	return err
}

// take takes a token from lim, or returns a 429 *Error with msg (and
// Retry-After set on w) when none is left; a refused attempt takes nothing.
func take(w http.ResponseWriter, lim *rate.Limiter, msg string) error {
	now := time.Now()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return nil // burst 0 is impossible: the constructors set >= 1
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return tooMany(w, d, msg)
	}
	return nil
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
