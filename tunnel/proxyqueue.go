package tunnel

import (
	"context"
	"sync"
)

// proxyStream is a proxy stream with its header, waiting for AcceptProxy.
type proxyStream struct {
	hdr *ProxyHeader
	st  Stream
}

// proxyQueue holds the proxy streams Run accepted and AcceptProxy has not
// taken yet: a FIFO of at most max entries that holds one entry in place
// and a grown array only while more wait, so an idle session holds no
// backlog buffer (a channel of ProxyBacklog entries would hold 3 KiB for
// the session's lifetime).
type proxyQueue struct {
	max   int
	mu    sync.Mutex
	items []proxyStream
	one   [1]proxyStream // items' storage while at most one waits
	ready chan struct{}  // a token while items may be non-empty: wait on it, then tryPop
	room  chan struct{}  // a token after a pop freed a place
}

func newProxyQueue(max int) *proxyQueue {
	q := &proxyQueue{max: max, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
	q.items = q.one[:0]
	return q
}

// signal leaves a token in ch unless one is there.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// push appends p, waiting while max entries wait; it returns false (and
// keeps nothing) when ctx ends first.
func (q *proxyQueue) push(ctx context.Context, p proxyStream) bool {
	q.mu.Lock()
	for len(q.items) >= q.max {
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-ctx.Done():
			return false
		}
		q.mu.Lock()
	}
	q.items = append(q.items, p)
	q.mu.Unlock()
	signal(q.ready)
	return true
}

// tryPop takes the oldest entry, if any.
func (q *proxyQueue) tryPop() (proxyStream, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return proxyStream{}, false
	}
	p := q.items[0]
	q.items[0] = proxyStream{}
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = q.one[:0] // release a grown backing array
	} else {
		signal(q.ready) // for another waiting AcceptProxy
	}
	signal(q.room)
	return p, true
}

// drain removes and returns every waiting entry.
func (q *proxyQueue) drain() []proxyStream {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = q.one[:0]
	return items
}
