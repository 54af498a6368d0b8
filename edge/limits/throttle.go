package limits

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Policy is a failure budget: Burst failures at once, then one more every
// Every. A client past it is refused until a failure is refilled, so a
// valid credential from a throttled address waits at most Every after the
// failures stop (bounded backoff, never a lockout).
type Policy struct {
	Burst int
	Every time.Duration
}

// Throttle refuses a client Key whose recent failures exceed its Policy,
// per scope (an endpoint, or "" for one per edge). Its buckets live in a
// shared Table. Safe for concurrent use.
type Throttle struct {
	name   string
	table  *Table
	policy Policy
	prefix int
	now    func() time.Time

	refused atomic.Int64
	failed  atomic.Int64
}

// ThrottleConfig configures a Throttle.
type ThrottleConfig struct {
	// Name tells throttles of one table apart ("basic_auth", "agent_auth",
	// "ssh_auth"). Required.
	Name string
	// Policy is the failure budget per client and scope. Required.
	Policy Policy
	// IPv6Prefix is the prefix length IPv6 clients are keyed by, 1..64.
	// Default 64.
	IPv6Prefix int
	// Now is the clock; default time.Now (tests inject one).
	Now func() time.Time
}

// NewThrottle validates cfg and returns a Throttle keeping its buckets in
// table. It starts nothing.
func NewThrottle(table *Table, cfg ThrottleConfig) (*Throttle, error) {
	if table == nil || cfg.Name == "" {
		return nil, fmt.Errorf("limits: a throttle needs a table and a name")
	}
	if cfg.Policy.Burst < 1 || cfg.Policy.Every <= 0 {
		return nil, fmt.Errorf("limits: throttle %s: burst %d every %v: use a burst ≥ 1 and a period > 0", cfg.Name, cfg.Policy.Burst, cfg.Policy.Every)
	}
	if cfg.IPv6Prefix == 0 {
		cfg.IPv6Prefix = DefaultIPv6Prefix
	}
	if err := checkPrefix(cfg.IPv6Prefix); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Throttle{name: cfg.Name, table: table, policy: cfg.Policy, prefix: cfg.IPv6Prefix, now: cfg.Now}, nil
}

// Policy returns the throttle's failure budget.
func (t *Throttle) Policy() Policy { return t.policy }

// Wait reports how long the client addr must wait before its next attempt
// in scope: 0 = go ahead. A non-zero answer is counted as a refusal. It
// consumes nothing: only Failed does.
func (t *Throttle) Wait(scope string, addr netip.Addr) time.Duration {
	c, err := t.table.get()
	if err != nil {
		return 0
	}
	lim, ok := c.Get(t.table.hash(t.name, scope, KeyOf(addr, t.prefix)))
	if !ok {
		return 0
	}
	now := t.now()
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	t.refused.Add(1)
	wait := time.Duration((1 - tokens) * float64(t.policy.Every))
	if wait <= 0 {
		wait = time.Nanosecond
	}
	return wait
}

// Failed records a failed attempt of addr in scope.
func (t *Throttle) Failed(scope string, addr netip.Addr) {
	t.failed.Add(1)
	c, err := t.table.get()
	if err != nil {
		return
	}
	h := t.table.hash(t.name, scope, KeyOf(addr, t.prefix))
	now := t.now()
	if lim, ok := c.Get(h); ok {
		lim.AllowN(now, 1)
		// Refresh the TTL: the bucket is worth keeping until it refills.
		c.SetWithTTL(h, lim, 1, ttl(t.policy))
		return
	}
	lim := rate.NewLimiter(rate.Every(t.policy.Every), t.policy.Burst)
	lim.AllowN(now, 1)
	if c.SetWithTTL(h, lim, 1, ttl(t.policy)) {
		// Sets are applied asynchronously: wait, so that the client's next
		// failure finds this bucket instead of starting a full one.
		c.Wait()
	}
}

// ThrottleCounts is a copy of a Throttle's counters.
type ThrottleCounts struct {
	Failed  int64 // failures recorded
	Refused int64 // attempts refused while throttled
}

// Counts returns the throttle's counters.
func (t *Throttle) Counts() ThrottleCounts {
	return ThrottleCounts{Failed: t.failed.Load(), Refused: t.refused.Load()}
}
