package limits

import (
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/time/rate"
)

// DefaultTableEntries is the default size of a Table: some 200–300 bytes
// an entry with ristretto's bookkeeping, so about 16 MiB when full.
const DefaultTableEntries = 65536

// TableConfig configures a Table. Zero values take the defaults.
type TableConfig struct {
	// Entries is the most failure buckets kept at once, across every
	// throttle sharing the table. Default DefaultTableEntries.
	Entries int64
}

// Table is the bounded store of per-client failure buckets that every
// Throttle of an edge shares: a ristretto cache of at most Entries
// buckets, each of cost 1, kept until its bucket would be full again
// (TTL). An address spray evicts entries (TinyLFU admission keeps the
// clients seen often); it never grows the table. The cache and its
// goroutines start on first use; Close stops them.
type Table struct {
	entries int64
	seed    maphash.Seed

	once  sync.Once
	cache *ristretto.Cache[uint64, *rate.Limiter]
	err   error
}

// NewTable validates cfg and returns a Table. It starts nothing.
func NewTable(cfg TableConfig) (*Table, error) {
	if cfg.Entries == 0 {
		cfg.Entries = DefaultTableEntries
	}
	if cfg.Entries < 16 {
		return nil, fmt.Errorf("limits: a table of %d entries is too small: use at least 16", cfg.Entries)
	}
	return &Table{entries: cfg.Entries, seed: maphash.MakeSeed()}, nil
}

// get returns the cache, creating it on first use.
func (t *Table) get() (*ristretto.Cache[uint64, *rate.Limiter], error) {
	t.once.Do(func() {
		t.cache, t.err = ristretto.NewCache(&ristretto.Config[uint64, *rate.Limiter]{
			NumCounters:        10 * t.entries, // ristretto's advice: 10× the entries
			MaxCost:            t.entries,
			BufferItems:        64,
			Metrics:            true,
			IgnoreInternalCost: true,
		})
	})
	return t.cache, t.err
}

// Close stops the table's goroutines; later use finds it empty. Safe to
// call more than once, and on a table never used.
func (t *Table) Close() {
	t.once.Do(func() { t.err = errClosed })
	if t.cache != nil {
		t.cache.Close()
	}
}

var errClosed = fmt.Errorf("limits: table closed")

// TableCounts is a copy of a Table's figures.
type TableCounts struct {
	MaxEntries int64  // the configured bound
	Entries    int64  // buckets held now (cost added minus cost evicted)
	Added      uint64 // buckets ever admitted
	Evicted    uint64 // buckets evicted to make room
	Rejected   uint64 // new buckets TinyLFU refused to admit (table full of busier clients)
	Dropped    uint64 // sets dropped under contention
}

// Counts returns the table's figures (zero before first use).
func (t *Table) Counts() TableCounts {
	c := TableCounts{MaxEntries: t.entries}
	if t.cache == nil || t.cache.Metrics == nil {
		return c
	}
	m := t.cache.Metrics
	c.Entries = int64(m.CostAdded()) - int64(m.CostEvicted())
	c.Added, c.Evicted, c.Rejected, c.Dropped = m.KeysAdded(), m.KeysEvicted(), m.SetsRejected(), m.SetsDropped()
	return c
}

// Len counts the buckets held now, by walking the table (tests).
func (t *Table) Len() int {
	if t.cache == nil {
		return 0
	}
	t.cache.Wait()
	n := 0
	t.cache.IterValues(func(*rate.Limiter) bool { n++; return false })
	return n
}

// MaxCost returns the table's configured bound (entries of cost 1).
func (t *Table) MaxCost() int64 {
	if c, err := t.get(); err == nil {
		return c.MaxCost()
	}
	return t.entries
}

// hash returns the table key of (name, scope, k).
func (t *Table) hash(name, scope string, k Key) uint64 {
	var h maphash.Hash
	h.SetSeed(t.seed)
	h.WriteString(name)
	h.WriteByte(0)
	h.WriteString(scope)
	h.WriteByte(0)
	var b [8]byte
	for i := range b {
		b[i] = byte(k >> (8 * i))
	}
	h.Write(b[:])
	return h.Sum64()
}

// ttl is how long a bucket is worth keeping: after that it has refilled
// and equals a fresh one.
func ttl(p Policy) time.Duration { return time.Duration(p.Burst) * p.Every }
