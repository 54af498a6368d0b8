package tunnel

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff computes reconnect delays: Min, then times Factor after each
// failure, capped at Max, each spread by ±Jitter (a fraction) so that many
// agents cut off at once do not reconnect in step. The SDKs back off from
// 500 ms to 30 s by a factor of 2 (docs/agent-protocol.md#reconnect). Zero fields
// take those defaults and a jitter of 0.2; a negative Jitter means none.
// Reset after a successful connection. A Backoff is not safe for
// concurrent use.
type Backoff struct {
	Min    time.Duration
	Max    time.Duration
	Factor float64
	Jitter float64

	attempt int
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	lo, hi, factor, jitter := b.Min, b.Max, b.Factor, b.Jitter
	if lo <= 0 {
		lo = 500 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	if hi < lo {
		hi = lo
	}
	if factor <= 1 {
		factor = 2
	}
	switch {
	case jitter == 0:
		jitter = 0.2
	case jitter < 0:
		jitter = 0
	case jitter > 1:
		jitter = 1
	}
	d := float64(lo) * math.Pow(factor, float64(b.attempt))
	if d > float64(hi) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(hi)
	} else {
		b.attempt++
	}
	d *= 1 + jitter*(2*rand.Float64()-1)
	return min(time.Duration(d), time.Duration(float64(hi)*(1+jitter)))
}

// Attempt returns how many delays Next has grown since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset starts over from Min.
func (b *Backoff) Reset() { b.attempt = 0 }
