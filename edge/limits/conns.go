package limits

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// Connection cap defaults, sized for a 2-core edge: an idle public TLS
// connection costs the edge some 40–60 KiB, so 8192 of them stay under
// half a GiB; 1024 per address leaves room for a NAT gateway or an office
// behind one address, and for a load test from one host.
const (
	DefaultMaxConns      = 8192
	DefaultMaxConnsPerIP = 1024
)

// ConnsConfig configures Conns. Zero values take the defaults.
type ConnsConfig struct {
	// Total caps the connections held at once. Default DefaultMaxConns; -1
	// = no cap.
	Total int
	// PerIP caps the connections held at once by one Key. Default
	// DefaultMaxConnsPerIP; -1 = no cap.
	PerIP int
	// IPv6Prefix is the prefix length IPv6 clients are keyed by, 1..64.
	// Default 64.
	IPv6Prefix int
}

// Conns counts live connections per client Key and in total, and refuses
// one past either cap. An entry exists only while its Key holds a
// connection, so the map never holds more than Total entries (or the
// number of live connections, when Total is off). Safe for concurrent use.
type Conns struct {
	total, perIP int
	prefix       int

	mu    sync.Mutex
	n     int
	byKey map[Key]int32

	refusedPerIP atomic.Int64
	refusedTotal atomic.Int64
}

// NewConns validates cfg and returns an empty Conns.
func NewConns(cfg ConnsConfig) (*Conns, error) {
	if cfg.Total == 0 {
		cfg.Total = DefaultMaxConns
	}
	if cfg.PerIP == 0 {
		cfg.PerIP = DefaultMaxConnsPerIP
	}
	if cfg.IPv6Prefix == 0 {
		cfg.IPv6Prefix = DefaultIPv6Prefix
	}
	if err := checkPrefix(cfg.IPv6Prefix); err != nil {
		return nil, err
	}
	return &Conns{total: cfg.Total, perIP: cfg.PerIP, prefix: cfg.IPv6Prefix, byKey: make(map[Key]int32)}, nil
}

// Acquire counts a new connection from addr. It returns the Key to pass to
// Release when the connection ends, or ErrPerIPCap / ErrTotalCap (counted)
// when the connection must be refused; a refusal holds nothing.
func (c *Conns) Acquire(addr netip.Addr) (Key, error) {
	k := KeyOf(addr, c.prefix)
	c.mu.Lock()
	if c.total >= 0 && c.n >= c.total {
		c.mu.Unlock()
		c.refusedTotal.Add(1)
		return k, ErrTotalCap
	}
	held := c.byKey[k]
	if c.perIP >= 0 && int(held) >= c.perIP {
		c.mu.Unlock()
		c.refusedPerIP.Add(1)
		return k, ErrPerIPCap
	}
	c.byKey[k] = held + 1
	c.n++
	c.mu.Unlock()
	return k, nil
}

// Release ends a connection Acquire admitted under k. Call it once per
// admitted connection.
func (c *Conns) Release(k Key) {
	c.mu.Lock()
	if held := c.byKey[k]; held > 1 {
		c.byKey[k] = held - 1
	} else {
		delete(c.byKey, k)
	}
	if c.n > 0 {
		c.n--
	}
	c.mu.Unlock()
}

// ConnCounts is a copy of Conns' figures.
type ConnCounts struct {
	Open         int   // connections held now
	Keys         int   // client keys holding them (entries of the map)
	RefusedPerIP int64 // connections refused by the per-address cap
	RefusedTotal int64 // connections refused by the total cap
}

// Counts returns the current figures.
func (c *Conns) Counts() ConnCounts {
	c.mu.Lock()
	n, k := c.n, len(c.byKey)
	c.mu.Unlock()
	return ConnCounts{Open: n, Keys: k, RefusedPerIP: c.refusedPerIP.Load(), RefusedTotal: c.refusedTotal.Load()}
}
