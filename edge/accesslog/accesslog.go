// Package accesslog writes an edge's access log: one JSON line per
// traffic.Record (docs/observability.md#access-log), through a bounded
// buffer.
//
// Invariants: Record never blocks and never allocates beyond the buffer
// made in New: when the writer cannot keep up (a slow disk, a pipe nobody
// reads) records are dropped and counted, and the request that made the
// record is not slowed; memory is bounded by Config.Buffer records; the
// writer goroutine is Run's, and ends with it.
package accesslog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/tollgate/tollgate/traffic"
)

// DefaultBuffer is the default of Config.Buffer.
const DefaultBuffer = 4096

// Config configures a Log.
type Config struct {
	// Buffer is how many records may wait for the writer; past it new
	// records are dropped and counted. Default DefaultBuffer; at most
	// 1<<20.
	Buffer int
	// Logger receives write errors (at most one line per 10 s). Default:
	// no logs.
	Logger *zap.Logger
}

// Log is an access log. Create it with New, run its writer with Run, hand
// it records with Record (it is an edge.TrafficSink). Its methods are safe
// for concurrent use.
type Log struct {
	w    *bufio.Writer
	enc  *json.Encoder
	ch   chan traffic.Record
	log  *zap.Logger
	errs *rate.Limiter

	written, dropped, failed atomic.Int64
}

// New returns a Log writing to w. It starts nothing.
func New(w io.Writer, cfg Config) (*Log, error) {
	if w == nil {
		return nil, errors.New("accesslog: a writer is required")
	}
	if cfg.Buffer == 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.Buffer < 1 || cfg.Buffer > 1<<20 {
		return nil, errors.New("accesslog: Buffer must be between 1 and 1048576 records")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &Log{w: bw, enc: enc, ch: make(chan traffic.Record, cfg.Buffer), log: cfg.Logger,
		errs: rate.NewLimiter(rate.Every(10*time.Second), 1)}, nil
}

// Record queues r for writing, or drops and counts it when the buffer is
// full. It never blocks.
func (l *Log) Record(r traffic.Record) {
	select {
	case l.ch <- r:
	default:
		l.dropped.Add(1)
	}
}

// Run writes queued records until ctx ends, flushing whenever the queue
// is empty; then it writes what is still queued, flushes and returns nil.
// A write error is counted and logged, and the writer goes on with the
// next record.
func (l *Log) Run(ctx context.Context) error {
	for {
		select {
		case r := <-l.ch:
			l.write(&r)
			if len(l.ch) == 0 {
				l.flush()
			}
		case <-ctx.Done():
			for {
				select {
				case r := <-l.ch:
					l.write(&r)
				default:
					l.flush()
					return nil
				}
			}
		}
	}
}

func (l *Log) write(r *traffic.Record) {
	if err := l.enc.Encode(r); err != nil {
		l.fail(err)
		return
	}
	l.written.Add(1)
}

func (l *Log) flush() {
	if err := l.w.Flush(); err != nil {
		l.fail(err)
	}
}

func (l *Log) fail(err error) {
	l.failed.Add(1)
	if l.errs.Allow() {
		l.log.Warn("cannot write the access log", zap.Error(err))
	}
}

// Counts are a Log's counters.
type Counts struct {
	Written  int64 // records encoded into the write buffer
	Dropped  int64 // records dropped because the buffer was full
	Failed   int64 // writes that failed (records, or flushes of several)
	Buffered int   // records waiting now
}

// Counts returns the Log's counters.
func (l *Log) Counts() Counts {
	return Counts{Written: l.written.Load(), Dropped: l.dropped.Load(), Failed: l.failed.Load(), Buffered: len(l.ch)}
}

var (
	descWritten = prometheus.NewDesc("tollgate_edge_access_log_records_written_total",
		"Access log records written (to the write buffer, flushed when the queue empties).", nil, nil)
	descDropped = prometheus.NewDesc("tollgate_edge_access_log_records_dropped_total",
		"Access log records dropped because the writer could not keep up (the buffer was full).", nil, nil)
	descFailed = prometheus.NewDesc("tollgate_edge_access_log_write_errors_total",
		"Access log writes that failed.", nil, nil)
	descBuffered = prometheus.NewDesc("tollgate_edge_access_log_records_buffered",
		"Access log records waiting for the writer.", nil, nil)
	descCapacity = prometheus.NewDesc("tollgate_edge_access_log_buffer_capacity",
		"Records the access log's buffer holds at most (--access-log-buffer).", nil, nil)
)

// Describe implements prometheus.Collector.
func (l *Log) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWritten
	ch <- descDropped
	ch <- descFailed
	ch <- descBuffered
	ch <- descCapacity
}

// Collect implements prometheus.Collector.
func (l *Log) Collect(ch chan<- prometheus.Metric) {
	c := l.Counts()
	ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(c.Written))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(c.Dropped))
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(c.Failed))
	ch <- prometheus.MustNewConstMetric(descBuffered, prometheus.GaugeValue, float64(c.Buffered))
	ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, float64(cap(l.ch)))
}
