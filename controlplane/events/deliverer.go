package events

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// Config holds a Deliverer's settings. Zero values take the defaults.
type Config struct {
	// Logger receives delivery failures (warn) and progress (debug).
	Logger *zap.Logger
	// Owner names this process in delivery leases. Default: a random
	// "cp_<hex>" per Deliverer.
	Owner string
	// BaseURL prefixes the uri of every event's object (the API's public
	// base URL, as restapi.Config.BaseURL). Default: uri stays a path.
	BaseURL string
	// FileDir is the directory of file targets; "" refuses them.
	FileDir string
	// RootCAs verifies webhook and NATS TLS servers. Default: the system's.
	RootCAs *x509.CertPool
	// AllowHTTPWebhooks accepts http:// webhook URLs (tests). Default false.
	AllowHTTPWebhooks bool
	// EgressAllow lists the ranges of otherwise forbidden addresses
	// (loopback, private, link-local, …; see Egress) that deliveries may
	// connect to. Default none: only public addresses.
	EgressAllow []netip.Prefix
	// PollInterval is how often the outbox is checked for work that other
	// processes committed. This process's own commits wake it at once.
	// Default 1s.
	PollInterval time.Duration
	// BatchSize is the most events sent to one destination at once.
	// Default 100.
	BatchSize int
	// SendTimeout bounds one batch's send. Default 10s.
	SendTimeout time.Duration
	// LeaseTTL is how long a destination's lease lasts: longer than a
	// send. Default 4 × SendTimeout.
	LeaseTTL time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed send, which
	// doubles per consecutive failure, with jitter of up to half.
	// Defaults 500ms and 1m.
	MinBackoff, MaxBackoff time.Duration
	// Retention is how long an undelivered event stays in the outbox;
	// older ones are dropped and counted. Default 72h.
	Retention time.Duration
	// TrafficCap is the most traffic events of one account the outbox
	// holds; past it, new ones are dropped and counted
	// (tollgate_events_traffic_dropped_total). Default DefaultTrafficCap.
	TrafficCap int
}

// TargetOptions returns the target rules this configuration implies.
func (c Config) TargetOptions() TargetOptions {
	return TargetOptions{FileDir: c.FileDir, AllowHTTP: c.AllowHTTPWebhooks, Egress: Egress{Allow: c.EgressAllow}}
}

// Deliverer sends the events in the store's outbox to event destinations.
// Create it with New, run it with Run; several processes may run one each
// over one database (leases keep each destination with one at a time).
type Deliverer struct {
	st      *store.Store
	cfg     Config
	log     *zap.Logger
	filters filterCache

	mu      sync.Mutex
	running map[string]bool       // destination IDs with a goroutine
	sinks   map[string]*sinkEntry // by destination ID

	delivered  atomic.Int64 // events acknowledged (metrics.go)
	sendErrors atomic.Int64 // batches that failed

	trafficWritten, trafficDropped atomic.Int64 // traffic.go
	traffic                        trafficCache
}

type sinkEntry struct {
	target string // the target JSON it was made from
	s      sink
}

// New returns a Deliverer over st. It starts nothing.
func New(cfg Config, st *store.Store) (*Deliverer, error) {
	if st == nil {
		return nil, errors.New("events: a store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Owner == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.Owner = "cp_" + hex.EncodeToString(b[:])
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	setDur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setDur(&cfg.PollInterval, time.Second)
	setDur(&cfg.SendTimeout, 10*time.Second)
	setDur(&cfg.LeaseTTL, 4*cfg.SendTimeout)
	setDur(&cfg.MinBackoff, 500*time.Millisecond)
	setDur(&cfg.MaxBackoff, time.Minute)
	setDur(&cfg.Retention, 72*time.Hour)
	if cfg.TrafficCap <= 0 {
		cfg.TrafficCap = DefaultTrafficCap
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.LeaseTTL <= cfg.SendTimeout {
		return nil, fmt.Errorf("events: LeaseTTL %v must exceed SendTimeout %v", cfg.LeaseTTL, cfg.SendTimeout)
	}
	return &Deliverer{st: st, cfg: cfg, log: cfg.Logger, running: map[string]bool{}, sinks: map[string]*sinkEntry{}}, nil
}

// Config returns the Deliverer's configuration with defaults applied.
func (d *Deliverer) Config() Config { return d.cfg }

// Run delivers until ctx ends, then waits for sends in flight and closes
// the connections to targets. It returns nil at the end of ctx.
func (d *Deliverer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		d.closeSinks()
	}()
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	nextPrune := time.Now()
	for {
		wake := d.st.Changed()
		if err := d.dispatch(ctx, &wg); err != nil && ctx.Err() == nil {
			d.log.Warn("reading event deliveries", zap.Error(err))
		}
		if now := time.Now(); !now.Before(nextPrune) {
			nextPrune = now.Add(time.Minute)
			if n, err := d.st.PruneOutbox(ctx, d.cfg.Retention); err != nil && ctx.Err() == nil {
				d.log.Warn("pruning the event outbox", zap.Error(err))
			} else if n > 0 {
				d.log.Debug("pruned the event outbox", zap.Int64("rows", n))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick.C:
		}
	}
}

// dispatch starts a goroutine for each due destination that has none.
func (d *Deliverer) dispatch(ctx context.Context, wg *sync.WaitGroup) error {
	dels, err := d.st.EventDeliveries(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	live := make(map[string]bool, len(dels))
	for _, del := range dels {
		live[del.DestinationID] = true
		if now.Before(del.NextAttemptAt) || (del.LeaseOwner != "" && del.LeaseOwner != d.cfg.Owner && now.Before(del.LeaseUntil)) {
			continue
		}
		d.mu.Lock()
		busy := d.running[del.DestinationID]
		d.running[del.DestinationID] = true
		d.mu.Unlock()
		if busy {
			continue
		}
		wg.Add(1)
		go func(del store.EventDelivery) { // named in stacks: events.(*Deliverer).deliverLoop
			defer wg.Done()
			defer func() {
				d.mu.Lock()
				delete(d.running, del.DestinationID)
				d.mu.Unlock()
			}()
			// Nothing after its position: no claim (a write) needed.
			if evs, err := d.st.ReadOutbox(ctx, del.AccountID, del.CursorRevision, del.CursorIdx, 1); err != nil || len(evs) == 0 {
				return
			}
			d.deliverLoop(ctx, del.DestinationID, del.AccountID)
		}(del)
	}
	// Close the connections of destinations that are gone.
	d.mu.Lock()
	for id, e := range d.sinks {
		if !live[id] && !d.running[id] {
			_ = e.s.Close()
			delete(d.sinks, id)
		}
	}
	d.mu.Unlock()
	return nil
}

// maxRoundsPerClaim bounds the batches one goroutine sends before it
// yields the destination back to dispatch.
const maxRoundsPerClaim = 20

// deliverLoop sends batches to one destination while it has full ones.
func (d *Deliverer) deliverLoop(ctx context.Context, destID, accountID string) {
	for round := 0; round < maxRoundsPerClaim && ctx.Err() == nil; round++ {
		more, err := d.deliverOnce(ctx, destID, accountID)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("event delivery failed", zap.String("destination_id", destID), zap.String("account_id", accountID), zap.Error(err))
			}
			return
		}
		if !more {
			return
		}
	}
}

// deliverOnce claims the destination, sends one batch and records the
// result. It reports whether a full batch was sent (more may wait).
func (d *Deliverer) deliverOnce(ctx context.Context, destID, accountID string) (bool, error) {
	del, ok, err := d.st.ClaimEventDelivery(ctx, destID, d.cfg.Owner, d.cfg.LeaseTTL)
	if err != nil || !ok {
		return false, err
	}
	res, full, sendErr := d.send(ctx, del)
	d.delivered.Add(res.Delivered)
	if sendErr != nil {
		d.sendErrors.Add(1)
		res.Err = sendErr
		res.RetryAt = time.Now().Add(d.backoff(del.Failures + 1))
	}
	// Record even when ctx ended: what was acknowledged stays acknowledged.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	kept, err := d.st.FinishEventDelivery(fctx, destID, d.cfg.Owner, res)
	if err != nil {
		return false, err
	}
	if !kept {
		return false, fmt.Errorf("the delivery lease of %s expired during a send; another process continues", destID)
	}
	return full && sendErr == nil, sendErr
}

// backoff is the wait after the n-th consecutive failure: MinBackoff
// doubled n-1 times, at most MaxBackoff, less up to half at random.
func (d *Deliverer) backoff(n int) time.Duration {
	b := float64(d.cfg.MinBackoff) * math.Pow(2, float64(min(n-1, 30)))
	b = math.Min(b, float64(d.cfg.MaxBackoff))
	return time.Duration(b * (1 - mrand.Float64()/2))
}

// send reads one batch after the destination's position, keeps the events
// some source of a subscription naming the destination selects, and sends
// them. The result's position is the last event read when all were sent,
// else the last one before the first event that was not.
func (d *Deliverer) send(ctx context.Context, del *store.EventDelivery) (store.DeliveryResult, bool, error) {
	res := store.DeliveryResult{ThroughRevision: del.CursorRevision, ThroughIdx: del.CursorIdx}
	rows, err := d.st.ReadOutbox(ctx, del.AccountID, del.CursorRevision, del.CursorIdx, d.cfg.BatchSize)
	if err != nil || len(rows) == 0 {
		return res, false, err
	}
	evs := expandOutbox(rows, del.CursorRevision, del.CursorIdx, d.cfg.BatchSize)
	full := len(evs) == d.cfg.BatchSize
	dest, err := d.st.GetEventDestination(ctx, del.AccountID, del.DestinationID)
	if err != nil {
		return res, false, err
	}
	sources, err := d.sourcesFor(ctx, del.AccountID, del.DestinationID)
	if err != nil {
		return res, false, err
	}
	// pos[i] is the position through which the batch is done once out[i]
	// (and everything before it) is sent.
	type pos struct {
		rev uint64
		idx int
		at  time.Time
	}
	var out []outgoing
	var outPos, before []pos // of each sent event, and of the event read before it
	prev := pos{del.CursorRevision, del.CursorIdx, time.Time{}}
	for _, e := range evs {
		o, ok, err := d.render(e, sources)
		if err != nil {
			d.log.Warn("skipping an event that cannot be rendered", zap.String("event_id", e.ID), zap.Error(err))
		}
		if ok {
			out = append(out, o)
			outPos = append(outPos, pos{e.Revision, e.Idx, e.CreatedAt})
			before = append(before, prev)
		}
		prev = pos{e.Revision, e.Idx, e.CreatedAt}
	}
	last := evs[len(evs)-1]
	if len(out) == 0 {
		res.ThroughRevision, res.ThroughIdx = last.Revision, last.Idx
		return res, full, nil
	}
	s, err := d.sinkFor(dest)
	if err != nil {
		return res, false, err
	}
	sctx, cancel := context.WithTimeout(ctx, d.cfg.SendTimeout)
	defer cancel()
	n, err := s.Send(sctx, out)
	if n > 0 {
		res.Delivered = int64(n)
		res.LastEventAt = outPos[n-1].at
	}
	if err != nil {
		// Done through the last event before the first one not sent
		// (events no source selects included).
		if n < len(before) {
			res.ThroughRevision, res.ThroughIdx = before[n].rev, before[n].idx
		} else {
			res.ThroughRevision, res.ThroughIdx = outPos[len(outPos)-1].rev, outPos[len(outPos)-1].idx
		}
		d.dropSink(dest.ID) // reconnect next time
		return res, false, err
	}
	res.ThroughRevision, res.ThroughIdx = last.Revision, last.Idx
	return res, full, nil
}

// sourcesFor returns the sources of the account's subscriptions that name
// the destination.
func (d *Deliverer) sourcesFor(ctx context.Context, accountID, destID string) ([]store.EventSource, error) {
	var out []store.EventSource
	page := store.Page{Limit: store.MaxPageSize}
	for i := 0; i < 1000; i++ {
		subs, more, err := d.st.ListEventSubscriptions(ctx, accountID, page)
		if err != nil {
			return nil, err
		}
		for _, sub := range subs {
			for _, id := range sub.DestinationIDs {
				if id == destID {
					out = append(out, sub.Sources...)
				}
			}
		}
		if !more || len(subs) == 0 {
			break
		}
		page.BeforeID = subs[len(subs)-1].ID
	}
	return out, nil
}

// render returns the event as sent if some source selects it: the fields
// of the selecting sources (all, if one of them selects all), object uris
// made absolute.
func (d *Deliverer) render(e store.OutboxEvent, sources []store.EventSource) (outgoing, bool, error) {
	var ev map[string]any
	var fields []string
	all, matched := false, false
	for _, src := range sources {
		if src.Type != e.Type {
			continue
		}
		if ev == nil {
			var err error
			if ev, err = decodeEvent(e.Payload); err != nil {
				return outgoing{}, false, err
			}
			d.absoluteURIs(ev)
		}
		f, err := d.filters.get(src.Type, src.Filter)
		if err != nil {
			d.log.Warn("a stored filter does not compile; its source selects nothing", zap.Error(err))
			continue
		}
		if !f.Match(ev) {
			continue
		}
		matched = true
		if len(src.Fields) == 0 {
			all = true
		}
		fields = append(fields, src.Fields...)
	}
	if !matched {
		return outgoing{}, false, nil
	}
	if all {
		fields = nil
	}
	body, err := json.Marshal(selectFields(ev, fields))
	if err != nil {
		return outgoing{}, false, err
	}
	return outgoing{ID: e.ID, Type: e.Type, Body: body}, true, nil
}

// absoluteURIs prefixes the object's uri path with the API base URL.
func (d *Deliverer) absoluteURIs(ev map[string]any) {
	if obj, ok := ev["object"].(map[string]any); ok {
		if u, ok := obj["uri"].(string); ok && strings.HasPrefix(u, "/") {
			obj["uri"] = d.cfg.BaseURL + u
		}
	}
}

// sinkFor returns the cached sink of a destination, made anew when its
// target changed.
func (d *Deliverer) sinkFor(dest *store.EventDestination) (sink, error) {
	d.mu.Lock()
	e := d.sinks[dest.ID]
	d.mu.Unlock()
	if e != nil && e.target == string(dest.Target) {
		return e.s, nil
	}
	if e != nil {
		d.dropSink(dest.ID)
	}
	t, err := ParseTarget(dest.Target, d.cfg.TargetOptions())
	if err != nil {
		return nil, err
	}
	s, err := newSink(t, d.sinkOptions())
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.sinks[dest.ID] = &sinkEntry{target: string(dest.Target), s: s}
	d.mu.Unlock()
	return s, nil
}

func (d *Deliverer) sinkOptions() sinkOptions {
	return sinkOptions{fileDir: d.cfg.FileDir, rootCAs: d.cfg.RootCAs, timeout: d.cfg.SendTimeout, log: d.log,
		egress: Egress{Allow: d.cfg.EgressAllow}}
}

func (d *Deliverer) dropSink(destID string) {
	d.mu.Lock()
	e := d.sinks[destID]
	delete(d.sinks, destID)
	d.mu.Unlock()
	if e != nil {
		_ = e.s.Close()
	}
}

func (d *Deliverer) closeSinks() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, e := range d.sinks {
		_ = e.s.Close()
		delete(d.sinks, id)
	}
}

// SendTest delivers one synthetic event (TestEventType) to the destination
// now, outside the outbox and its lease, and returns its ID. The error
// says why it was not delivered.
func (d *Deliverer) SendTest(ctx context.Context, dest *store.EventDestination) (string, error) {
	t, err := ParseTarget(dest.Target, d.cfg.TargetOptions())
	if err != nil {
		return "", err
	}
	s, err := newSink(t, d.sinkOptions())
	if err != nil {
		return "", err
	}
	defer s.Close()
	id := ids.New(ids.PrefixAuditEvent)
	body, _ := json.Marshal(map[string]any{"event_id": id, "event_type": TestEventType,
		"event_timestamp": time.Now().UTC().Format(time.RFC3339Nano), "account_id": dest.AccountID,
		"object": map[string]any{"id": dest.ID, "uri": d.cfg.BaseURL + "/event_destinations/" + dest.ID}})
	sctx, cancel := context.WithTimeout(ctx, d.cfg.SendTimeout)
	defer cancel()
	if _, err := s.Send(sctx, []outgoing{{ID: id, Type: TestEventType, Body: body}}); err != nil {
		return id, err
	}
	return id, nil
}
