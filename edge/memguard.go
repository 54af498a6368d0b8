package edge

import (
	"context"
	"net"
	"net/http"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
)

// Thresholds of the memory guard, as fractions of Config.MemoryLimit: it
// refuses new work once the live heap reaches guardHigh of the limit and
// admits again below guardLow (hysteresis, so it does not flap). With the
// Go runtime's soft limit set to the same value (debug.SetMemoryLimit),
// a live heap at 80% of it means the collector already runs almost
// continuously: the point where new work should go to another edge.
const (
	guardHigh     = 0.80
	guardLow      = 0.70
	guardInterval = 100 * time.Millisecond
)

// liveHeapMetric is the heap that survived the last garbage collection,
// in bytes (runtime/metrics, Go 1.21+).
const liveHeapMetric = "/gc/heap/live:bytes"

// heapObjectsMetric is every object in the heap, live or not yet collected,
// in bytes: the guard's measure until the first collection has finished
// (before it, liveHeapMetric reads 0).
const heapObjectsMetric = "/memory/classes/heap/objects:bytes"

// memGuard refuses new public connections, agent sessions and HTTP
// requests (on connections already open too) while the process's live
// heap is above guardHigh of a limit. The hot path reads
// one atomic; a goroutine of Serve samples the runtime every
// guardInterval.
type memGuard struct {
	limit     uint64 // bytes; 0 = off
	high, low uint64
	log       *zap.Logger

	over    atomic.Bool
	live    atomic.Uint64 // last sample, bytes
	refused atomic.Int64

	mu     sync.Mutex // guards sample
	sample []metrics.Sample
}

func newMemGuard(limit int64, log *zap.Logger) *memGuard {
	g := &memGuard{log: log, sample: []metrics.Sample{{Name: liveHeapMetric}, {Name: heapObjectsMetric}}}
	if limit > 0 {
		g.limit = uint64(limit)
		g.high = uint64(float64(limit) * guardHigh)
		g.low = uint64(float64(limit) * guardLow)
	}
	return g
}

// check samples the live heap and updates the guard's state, logging each
// change.
func (g *memGuard) check() {
	if g.limit == 0 {
		return
	}
	g.mu.Lock()
	metrics.Read(g.sample)
	v, objects := g.sample[0].Value, g.sample[1].Value
	g.mu.Unlock()
	if v.Kind() != metrics.KindUint64 {
		return
	}
	live := v.Uint64()
	if live == 0 && objects.Kind() == metrics.KindUint64 {
		// No collection has finished yet, so nothing is known to be live:
		// count every heap object until one has.
		live = objects.Uint64()
	}
	g.live.Store(live)
	switch {
	case !g.over.Load() && live >= g.high:
		g.over.Store(true)
		g.log.Warn("memory guard: refusing new connections, agent sessions and requests",
			zap.Uint64("live_heap_bytes", live), zap.Uint64("memory_limit_bytes", g.limit), zap.String("code", string(codes.EdgeOverloaded)))
	case g.over.Load() && live < g.low:
		g.over.Store(false)
		g.log.Info("memory guard: admitting new work again",
			zap.Uint64("live_heap_bytes", live), zap.Uint64("memory_limit_bytes", g.limit), zap.Int64("refused_total", g.refused.Load()))
	}
}

// run samples until ctx ends.
func (g *memGuard) run(ctx context.Context) error {
	if g.limit == 0 {
		return nil
	}
	t := time.NewTicker(guardInterval)
	defer t.Stop()
	for {
		g.check()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// refuse reports whether new work must be refused now, counting it. A nil
// guard (a publicServer built by a test) refuses nothing.
func (g *memGuard) refuse() bool {
	if g == nil || !g.over.Load() {
		return false
	}
	g.refused.Add(1)
	return true
}

// errOverloaded refuses the Auth of an agent session while the memory
// guard is over its threshold.
var errOverloaded = codes.NewError(codes.EdgeOverloaded,
	"This edge is short of memory and takes no new agent sessions for now. The agent will retry, or connect to another edge.")

// MemoryGuardStats is the memory guard's state (Edge.MemoryGuard).
type MemoryGuardStats struct {
	Limit    uint64 // Config.MemoryLimit in bytes; 0 = the guard is off
	LiveHeap uint64 // live heap at the last sample, bytes
	Refusing bool   // new connections, agent sessions and requests are refused now
	Refused  int64  // connections, agent sessions and HTTP requests refused since start
}

// MemoryGuard returns the memory guard's state and counter.
func (m *Metrics) MemoryGuard() MemoryGuardStats {
	g := m.e.mem
	return MemoryGuardStats{Limit: g.limit, LiveHeap: g.live.Load(), Refusing: g.over.Load(), Refused: g.refused.Load()}
}

// refusalOverloaded answers an HTTP request that arrives, on a connection
// already open, while the guard is over its threshold: 503 with
// Retry-After (RFC 9110 §15.6.4, §10.2.3), so the client retries later or
// elsewhere.
var refusalOverloaded = httpproxy.NewRefusal(http.StatusServiceUnavailable, codes.EdgeOverloaded,
	"This edge is short of memory and takes no new requests for now. Retry in a few seconds.", "").WithRetryAfter(overloadRetryAfter)

// overloadRetryAfter is the Retry-After of refusalOverloaded, in seconds:
// the guard admits again once the live heap falls under guardLow, which
// a collection or two under a lighter load brings about.
const overloadRetryAfter = 5

// refuseRequest is httpproxy.Config.Overload: while the guard is over its
// threshold, every new HTTP request — a kept-alive HTTP/1.1 connection's
// next one, a new HTTP/2 stream — is answered 503 (TG_2741) before a
// proxy stream is opened for it, and counted.
func (g *memGuard) refuseRequest() *httpproxy.Refusal {
	if !g.refuse() {
		return nil
	}
	return refusalOverloaded
}

// admit refuses (resets) a new public connection while the guard is over
// its threshold; it reports whether c may be served.
func (g *memGuard) admit(c net.Conn) bool {
	if !g.refuse() {
		return true
	}
	refuse(c)
	return false
}
