package events

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/internal/jsonenc"
	"github.com/tollgate/tollgate/traffic"
)

// Traffic events (docs/events.md#traffic-events): edges send batches of
// traffic.Record; IngestTraffic writes those of accounts that want them
// into the outbox, where the Deliverer delivers them like audit events.

// DefaultTrafficCap is the default of Config.TrafficCap.
const DefaultTrafficCap = 100_000

// MaxTrafficBatch is the most records one batch may carry.
const MaxTrafficBatch = 5000

// trafficPayload is a traffic event in the outbox: the envelope's ID and
// time (the end of the request or connection) and the record's fields at
// the top level.
type trafficPayload struct {
	EventID        string `json:"event_id"`
	EventTimestamp string `json:"event_timestamp"`
	traffic.Record
}

// appendTrafficPayload appends the outbox payload of record r with its
// ID and end time to b: exactly json.Marshal(trafficPayload{...}) (the
// envelope's two fields, then the record's), without reflection
// (traffic.Record.AppendJSON; TestTrafficPayloadJSON).
func appendTrafficPayload(b []byte, id string, end time.Time, r *traffic.Record) ([]byte, error) {
	b = append(b, `{"event_id":`...)
	b = jsonenc.AppendString(b, id)
	b = append(b, `,"event_timestamp":`...)
	var ts [40]byte
	b = jsonenc.AppendString(b, string(end.AppendFormat(ts[:0], time.RFC3339Nano)))
	mark := len(b)
	b, err := r.AppendJSON(b)
	if err != nil {
		return nil, err
	}
	b[mark] = ',' // the record's opening brace
	return b, nil
}

// TrafficEventID derives the stable ID of the seq-th record of an edge's
// run (traffic.Batch): the same inputs give the same ID, so a retried
// batch is deduplicated by the outbox. The ID is "ev_t", 16 hex digits of
// a hash of the edge and its run, and the sequence number in 16 hex
// digits: the IDs of one run sort in the order of their records, so the
// outbox's ID index grows at one end per run instead of at random places
// (half the ingest's CPU on SQLite; BenchmarkAppendTrafficEvents).
func TrafficEventID(edgeID, boot string, seq uint64) string {
	return eventID(runOf(edgeID, boot), seq)
}

// IngestTraffic writes the batch's records into the outbox, each as an
// event of its Type, when its account has a source of that type in a
// subscription with a destination; the others are ignored. The events of
// one account and type go into one packed row (pack.go). It answers with
// the counts and the accounts that want traffic now (traffic.Answer).
// Errors: a *codes.Error (codes.EdgeBadRequest) for a malformed batch,
// which writes nothing; else the store's.
func (d *Deliverer) IngestTraffic(ctx context.Context, b traffic.Batch) (traffic.Answer, error) {
	if err := b.DecodeRecords(); err != nil { // an edge in this process keeps them encoded
		return traffic.Answer{}, codes.NewError(codes.EdgeBadRequest, "The traffic batch cannot be decoded: %v", err)
	}
	if b.EdgeID == "" || len(b.EdgeID) > 300 || len(b.Boot) > 100 || len(b.Records) > MaxTrafficBatch {
		return traffic.Answer{}, codes.NewError(codes.EdgeBadRequest, "A traffic batch needs edge_id (at most 300 bytes), a boot of at most 100 bytes and at most %d records.", MaxTrafficBatch)
	}
	for i := range b.Records {
		if r := &b.Records[i]; !IsTrafficType(r.Type) {
			return traffic.Answer{}, codes.NewError(codes.EdgeBadRequest, "Record %d of the traffic batch has event_type %q; want %s or %s.",
				i, truncate(r.Type, 80), traffic.HTTPRequestComplete, traffic.TCPConnectionClosed)
		}
	}
	wants, err := d.trafficWants(ctx)
	if err != nil {
		return traffic.Answer{}, err
	}
	ans := traffic.Answer{Wants: wants}
	// The records wanted, up to each account's room under the cap (the
	// newest are refused); the others are counted.
	room := map[string]int{}
	drops := dropCounts{}
	var packs []*packer
	var singles []store.TrafficEvent
	byKey := map[[2]string]*packer{}
	run := runOf(b.EdgeID, b.Boot)
	for i := range b.Records {
		r := &b.Records[i]
		if !wanted(wants, r.AccountID, r.Type) {
			continue
		}
		left, ok := room[r.AccountID]
		if !ok {
			if left, err = d.trafficRoom(ctx, r.AccountID); err != nil {
				return traffic.Answer{}, err
			}
		}
		if left == 0 {
			room[r.AccountID] = 0 // not asked again
			drops.add(r.AccountID, r.Type, 0, 1)
			continue
		}
		k := [2]string{r.AccountID, r.Type}
		p := byKey[k]
		if p == nil {
			p = &packer{accountID: r.AccountID, typ: r.Type}
			byKey[k] = p
			packs = append(packs, p)
		}
		seq, end := b.FirstSeq+uint64(i), recordEnd(r)
		if err := p.add(seq, end, r); err != nil {
			// A start the packed encoding cannot hold (ErrBinaryTime): a
			// row of its own, as JSON.
			id := eventID(run, seq)
			body, err := appendTrafficPayload(nil, id, end, r)
			if err != nil {
				return traffic.Answer{}, codes.NewError(codes.EdgeBadRequest, "Record %d of the traffic batch cannot be encoded: %v", i, err)
			}
			singles = append(singles, store.TrafficEvent{ID: id, AccountID: r.AccountID, Type: r.Type, Payload: body, At: end})
		}
		room[r.AccountID] = left - 1
	}
	rows := make([]store.TrafficEvent, 0, len(packs)+len(singles))
	for _, p := range packs {
		if p.enc.Count() > 0 {
			rows = append(rows, p.row(run))
		}
	}
	rows = append(rows, singles...)
	res, err := d.st.AppendTrafficEvents(ctx, rows, nil)
	if err != nil {
		return traffic.Answer{}, err
	}
	for _, row := range rows {
		n := max(row.Count, 1)
		if res.Dropped > 0 { // the revision's outbox positions ran out: all of them
			drops.add(row.AccountID, row.Type, 0, int64(n))
		} else {
			d.addTrafficRows(row.AccountID, n)
		}
	}
	for _, dc := range b.Dropped {
		if dc.Count > 0 && wanted(wants, dc.AccountID, dc.Type) {
			drops.add(dc.AccountID, dc.Type, dc.Count, 0)
		}
	}
	if err := d.st.AddTrafficDrops(ctx, drops.list()); err != nil {
		return traffic.Answer{}, err
	}
	outboxDropped := drops.outbox()
	d.trafficWritten.Add(int64(res.Written))
	d.trafficDropped.Add(outboxDropped)
	ans.Accepted, ans.Dropped = res.Written+res.Duplicates, int(outboxDropped)
	return ans, nil
}

// trafficCacheTTL is how long the wants and an account's count of
// traffic rows are reused: a new subscription reaches edges within it
// plus their poll, and the cap is checked against a count at most this
// old plus what this process wrote since.
const trafficCacheTTL = 2 * time.Second

// trafficCache holds the Deliverer's reused traffic reads.
type trafficCache struct {
	mu      sync.Mutex
	wants   map[string][]string
	wantsAt time.Time
	rows    map[string]trafficRows // by account
}

type trafficRows struct {
	n  int
	at time.Time
}

// trafficWants returns the store's TrafficWants, read at most once per
// trafficCacheTTL.
func (d *Deliverer) trafficWants(ctx context.Context) (map[string][]string, error) {
	c := &d.traffic
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wants != nil && time.Since(c.wantsAt) < trafficCacheTTL {
		return c.wants, nil
	}
	w, err := d.st.TrafficWants(ctx, TrafficTypes)
	if err != nil {
		return nil, err
	}
	c.wants, c.wantsAt = w, time.Now()
	return w, nil
}

// trafficRoom returns how many more traffic events the account may have
// in the outbox under TrafficCap.
func (d *Deliverer) trafficRoom(ctx context.Context, acct string) (int, error) {
	c := &d.traffic
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.rows[acct]
	if !ok || time.Since(r.at) >= trafficCacheTTL {
		n, err := d.st.TrafficRows(ctx, acct)
		if err != nil {
			return 0, err
		}
		if c.rows == nil || len(c.rows) > 100_000 {
			c.rows = map[string]trafficRows{}
		}
		r = trafficRows{n: n, at: time.Now()}
		c.rows[acct] = r
	}
	return max(d.cfg.TrafficCap-r.n, 0), nil
}

// addTrafficRows adds n events written for the account to its cached
// count.
func (d *Deliverer) addTrafficRows(acct string, n int) {
	c := &d.traffic
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.rows[acct]; ok {
		r.n += n
		c.rows[acct] = r
	}
}

// dropCounts sums drops by account and type.
type dropCounts map[[2]string]store.TrafficDrop

func (c dropCounts) add(acct, typ string, edge, outbox int64) {
	k := [2]string{acct, typ}
	d := c[k]
	d.AccountID, d.Type = acct, typ
	d.Edge += edge
	d.Outbox += outbox
	c[k] = d
}

// outbox returns the sum of the outbox drops.
func (c dropCounts) outbox() int64 {
	var n int64
	for _, d := range c {
		n += d.Outbox
	}
	return n
}

func (c dropCounts) list() []store.TrafficDrop {
	out := make([]store.TrafficDrop, 0, len(c))
	for _, d := range c {
		out = append(out, d)
	}
	return out
}

func wanted(wants map[string][]string, acct, typ string) bool {
	for _, t := range wants[acct] {
		if t == typ {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

var (
	descTrafficWritten = prometheus.NewDesc("tollgate_events_traffic_written_total",
		"Traffic events from edges this process wrote to the event outbox.", nil, nil)
	descTrafficDropped = prometheus.NewDesc("tollgate_events_traffic_dropped_total",
		"Traffic events from edges this process dropped because their account already had the most traffic events the outbox holds (TrafficCap).", nil, nil)
)
