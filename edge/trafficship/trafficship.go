// Package trafficship ships an edge's traffic records (package traffic) to
// the control plane, which turns them into the traffic events
// http_request_complete.v0 and tcp_connection_closed.v0
// (docs/events.md#traffic-events).
//
// A Shipper is an edge.TrafficSink. Record never blocks and never waits
// for the network: it keeps the record in a buffer bounded in records
// and in bytes, or, when the buffer is full, drops it and counts the drop
// (tollgate_edge_traffic_records_dropped_total). Run sends the buffer in
// batches (traffic.Batch) and learns from each answer which accounts want
// which record types; records of other accounts and types are not kept at
// all, and until the first answer none are. A batch that fails stays at
// the front of the buffer and is sent again, with the same sequence
// numbers, so the control plane writes its events once.
package trafficship

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/traffic"
)

// Defaults of Config.
const (
	DefaultMaxRecords    = 20_000
	DefaultMaxBytes      = 16 << 20
	DefaultBatchSize     = 1000
	DefaultFlushInterval = time.Second
	DefaultPollInterval  = 10 * time.Second
)

// Config holds a Shipper's settings. Zero values take the defaults.
type Config struct {
	// EdgeID names the edge in batches (and in the event IDs derived from
	// them).
	EdgeID string
	// MaxRecords and MaxBytes bound the buffer: records held, and their
	// encoded bytes (the binary encoding, tens of bytes for a record whose
	// strings repeat the previous one's). Past either, new records are
	// dropped and counted.
	MaxRecords int
	MaxBytes   int64
	// BatchSize is the most records one batch carries (at most
	// events.MaxTrafficBatch).
	BatchSize int
	// FlushInterval is how often the buffer is sent; a full batch is sent
	// at once.
	FlushInterval time.Duration
	// PollInterval is how often an edge with nothing to send asks which
	// accounts want traffic (an empty batch).
	PollInterval time.Duration
	// SendTimeout bounds one batch's send. Default 10s.
	SendTimeout time.Duration
	// Logger receives failures to send (warn, once per run of failures).
	Logger *zap.Logger
}

// PostFunc sends a batch to the control plane and returns its answer:
// controlclient.Client.PostTraffic for a standalone edge, the control
// plane's events.Deliverer.IngestTraffic in-process for `tollgated dev`.
type PostFunc func(ctx context.Context, b traffic.Batch) (traffic.Answer, error)

// Type bits of a want set.
const (
	wantHTTP = 1 << iota
	wantTCP
)

func typeBit(typ string) uint8 {
	switch typ {
	case traffic.HTTPRequestComplete:
		return wantHTTP
	case traffic.TCPConnectionClosed:
		return wantTCP
	}
	return 0
}

// Shipper buffers and sends traffic records. Create it with New; Record is
// safe for concurrent use; run Run once.
type Shipper struct {
	cfg  Config
	post PostFunc
	log  *zap.Logger
	boot string
	kick chan struct{}

	wants atomic.Pointer[map[string]uint8] // nil until the first answer

	mu sync.Mutex
	// chunks hold the buffered records, encoded as they are recorded
	// (traffic.RecordEncoder): each chunk is one batch of at most
	// BatchSize records, the first being sent while later ones fill.
	chunks  []*chunk
	records int   // records in chunks
	bytes   int64 // their encoded bytes
	nextSeq uint64
	// drops counts the records dropped since the last acknowledged batch
	// by account and type bit, reported in the next batch (Batch.Dropped).
	drops map[dropKey]int64

	shipped, dropped, failed atomic.Int64
}

// New returns a Shipper that sends with post. It starts nothing.
func New(cfg Config, post PostFunc) *Shipper {
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Shipper{cfg: cfg, post: post, log: cfg.Logger, boot: hex.EncodeToString(b[:]), kick: make(chan struct{}, 1)}
}

type dropKey struct {
	account string
	bit     uint8
}

// chunk is one batch's records in the binary encoding.
type chunk struct {
	enc      traffic.RecordEncoder
	data     []byte
	firstSeq uint64
	sealed   bool // being sent or sent once: nothing is added
}

// Record keeps r for sending when its account wants its type: it encodes
// r at once (traffic.RecordEncoder: tens of nanoseconds while r's strings
// are in the cache, and the buffer then holds bytes without pointers for
// the collector to trace). When the buffer is full it drops r and counts
// it. It never blocks on I/O.
func (s *Shipper) Record(r traffic.Record) {
	w := s.wants.Load()
	if w == nil || (*w)[r.AccountID]&typeBit(r.Type) == 0 {
		return
	}
	s.mu.Lock()
	if s.records >= s.cfg.MaxRecords || s.bytes >= s.cfg.MaxBytes {
		s.dropLocked(&r)
		return
	}
	var c *chunk
	if n := len(s.chunks); n > 0 && !s.chunks[n-1].sealed && s.chunks[n-1].enc.Count() < s.cfg.BatchSize {
		c = s.chunks[n-1]
	} else {
		c = &chunk{firstSeq: s.nextSeq, data: make([]byte, 0, 4<<10)}
		s.chunks = append(s.chunks, c)
	}
	before := len(c.data)
	var err error
	if c.data, err = c.enc.Append(c.data, &r); err != nil { // a start outside years 1678-2262
		if c.enc.Count() == 0 {
			s.chunks = s.chunks[:len(s.chunks)-1]
		}
		s.dropLocked(&r)
		return
	}
	s.records++
	s.nextSeq++
	s.bytes += int64(len(c.data) - before)
	full := c.enc.Count() >= s.cfg.BatchSize
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// dropLocked counts r as dropped and unlocks s.mu.
func (s *Shipper) dropLocked(r *traffic.Record) {
	if s.drops == nil {
		s.drops = map[dropKey]int64{}
	}
	s.drops[dropKey{r.AccountID, typeBit(r.Type)}]++
	s.mu.Unlock()
	s.dropped.Add(1)
}

// Run sends until ctx ends: at once (to learn the wants), then every
// FlushInterval or when a batch is full. It returns nil at the end of ctx;
// records still buffered then are not sent.
func (s *Shipper) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.FlushInterval)
	defer tick.Stop()
	var lastAnswer time.Time
	failing := false
	for {
		if err := s.flush(ctx, &lastAnswer); err != nil {
			if !failing && ctx.Err() == nil {
				s.log.Warn("sending traffic records to the control plane failed; they stay buffered (full: dropped and counted)", zap.Error(err))
			}
			failing = true
		} else if failing {
			failing = false
			s.log.Info("sending traffic records to the control plane works again")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.kick:
		}
	}
}

// maxBatchesPerFlush bounds the batches one flush sends before it
// waits for the next tick.
const maxBatchesPerFlush = 100

// flush sends the buffer's chunks as batches, or an empty batch when
// there are none and the wants are older than PollInterval.
func (s *Shipper) flush(ctx context.Context, lastAnswer *time.Time) error {
	for i := 0; i < maxBatchesPerFlush; i++ {
		s.mu.Lock()
		b := traffic.Batch{EdgeID: s.cfg.EdgeID, Boot: s.boot, Dropped: s.dropReport()}
		var c *chunk
		if len(s.chunks) > 0 {
			c = s.chunks[0]
			c.sealed = true
			b.FirstSeq, b.Encoded, b.Count = c.firstSeq, c.data, c.enc.Count()
		} else {
			b.FirstSeq = s.nextSeq
		}
		s.mu.Unlock()
		if c == nil && len(b.Dropped) == 0 && !lastAnswer.IsZero() && time.Since(*lastAnswer) < s.cfg.PollInterval {
			return nil
		}
		sctx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
		ans, err := s.post(sctx, b)
		cancel()
		if err != nil {
			if c != nil {
				s.failed.Add(1)
			}
			return err
		}
		*lastAnswer = time.Now()
		s.setWants(ans.Wants)
		s.mu.Lock()
		s.reported(b.Dropped)
		if c == nil {
			s.mu.Unlock()
			return nil
		}
		s.chunks[0] = nil
		s.chunks = s.chunks[1:]
		s.records -= b.Count
		s.bytes -= int64(len(c.data))
		more := len(s.chunks) > 0
		s.mu.Unlock()
		s.shipped.Add(int64(b.Count))
		if !more {
			return nil
		}
	}
	return nil
}

// dropReport returns the drops not yet acknowledged (s.mu held).
func (s *Shipper) dropReport() []traffic.DropCount {
	var out []traffic.DropCount
	for k, n := range s.drops {
		typ := traffic.HTTPRequestComplete
		if k.bit == wantTCP {
			typ = traffic.TCPConnectionClosed
		}
		out = append(out, traffic.DropCount{AccountID: k.account, Type: typ, Count: n})
	}
	return out
}

// reported takes acknowledged drop counts off the pending ones (s.mu
// held); drops counted since the batch was made stay.
func (s *Shipper) reported(ds []traffic.DropCount) {
	for _, d := range ds {
		k := dropKey{d.AccountID, typeBit(d.Type)}
		if s.drops[k] -= d.Count; s.drops[k] <= 0 {
			delete(s.drops, k)
		}
	}
}

func (s *Shipper) setWants(w map[string][]string) {
	m := make(map[string]uint8, len(w))
	for acct, types := range w {
		for _, t := range types {
			m[acct] |= typeBit(t)
		}
	}
	s.wants.Store(&m)
}

// Counts are a Shipper's counters.
type Counts struct {
	Shipped  int64 // records the control plane acknowledged
	Dropped  int64 // records dropped because the buffer was full
	Failed   int64 // batches whose send failed (they are sent again)
	Buffered int   // records waiting now
	Bytes    int64 // their encoded bytes
}

// Counts returns the Shipper's counters.
func (s *Shipper) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Counts{Shipped: s.shipped.Load(), Dropped: s.dropped.Load(), Failed: s.failed.Load(), Buffered: s.records, Bytes: s.bytes}
}

var (
	descShipped = prometheus.NewDesc("tollgate_edge_traffic_records_shipped_total",
		"Traffic records (for traffic events) the control plane acknowledged.", nil, nil)
	descDropped = prometheus.NewDesc("tollgate_edge_traffic_records_dropped_total",
		"Traffic records (for traffic events) dropped because the edge's buffer was full (the control plane was slow or unreachable).", nil, nil)
	descFailed = prometheus.NewDesc("tollgate_edge_traffic_batch_errors_total",
		"Batches of traffic records whose send to the control plane failed (each is sent again).", nil, nil)
	descBuffered = prometheus.NewDesc("tollgate_edge_traffic_records_buffered",
		"Traffic records waiting to be sent to the control plane.", nil, nil)
	descBufferedBytes = prometheus.NewDesc("tollgate_edge_traffic_buffer_bytes",
		"Bytes of the traffic records waiting to be sent, as encoded for sending.", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *Shipper) Describe(ch chan<- *prometheus.Desc) {
	ch <- descShipped
	ch <- descDropped
	ch <- descFailed
	ch <- descBuffered
	ch <- descBufferedBytes
}

// Collect implements prometheus.Collector.
func (s *Shipper) Collect(ch chan<- prometheus.Metric) {
	c := s.Counts()
	ch <- prometheus.MustNewConstMetric(descShipped, prometheus.CounterValue, float64(c.Shipped))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(c.Dropped))
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(c.Failed))
	ch <- prometheus.MustNewConstMetric(descBuffered, prometheus.GaugeValue, float64(c.Buffered))
	ch <- prometheus.MustNewConstMetric(descBufferedBytes, prometheus.GaugeValue, float64(c.Bytes))
}
