package trafficship

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/traffic"
)

// recorder is a PostFunc that keeps the batches it is given and answers
// with wants, or fails while down.
type recorder struct {
	batches []traffic.Batch
	wants   map[string][]string
	down    bool
}

func (r *recorder) post(_ context.Context, b traffic.Batch) (traffic.Answer, error) {
	if r.down {
		return traffic.Answer{}, errors.New("connection refused")
	}
	if err := b.DecodeRecords(); err != nil {
		return traffic.Answer{}, err
	}
	r.batches = append(r.batches, b)
	return traffic.Answer{Accepted: len(b.Records), Wants: r.wants}, nil
}

func rec(acct, typ, path string) traffic.Record {
	return traffic.Record{Type: typ, AccountID: acct, Path: path, Start: time.Now()}
}

// TestShipperWantsAndRetries: nothing is kept before the control plane
// said who wants what; then only wanted records are; a failed batch is
// sent again with the same sequence numbers, the next one continues them.
func TestShipperWantsAndRetries(t *testing.T) {
	r := &recorder{wants: map[string][]string{"acct_a": {traffic.HTTPRequestComplete}}}
	s := New(Config{EdgeID: "edge_1", BatchSize: 2}, r.post)
	ctx := context.Background()
	var last time.Time
	s.Record(rec("acct_a", traffic.HTTPRequestComplete, "/early"))
	if c := s.Counts(); c.Buffered != 0 {
		t.Fatalf("kept a record before any answer: %+v", c)
	}
	if err := s.flush(ctx, &last); err != nil || len(r.batches) != 1 || len(r.batches[0].Records) != 0 {
		t.Fatalf("first flush (an empty batch for the wants): %v %v", err, r.batches)
	}
	s.Record(rec("acct_a", traffic.HTTPRequestComplete, "/1"))
	s.Record(rec("acct_a", traffic.TCPConnectionClosed, ""))       // type not wanted
	s.Record(rec("acct_b", traffic.HTTPRequestComplete, "/other")) // account not wanted
	s.Record(rec("acct_a", traffic.HTTPRequestComplete, "/2"))
	s.Record(rec("acct_a", traffic.HTTPRequestComplete, "/3"))
	if c := s.Counts(); c.Buffered != 3 || c.Dropped != 0 {
		t.Fatalf("counts %+v, want 3 buffered", c)
	}
	r.down = true
	if err := s.flush(ctx, &last); err == nil {
		t.Fatal("a flush with the control plane down did not fail")
	}
	r.down = false
	if err := s.flush(ctx, &last); err != nil {
		t.Fatal(err)
	}
	if len(r.batches) != 3 {
		t.Fatalf("%d batches, want 3", len(r.batches))
	}
	b1, b2 := r.batches[1], r.batches[2]
	if b1.FirstSeq != 0 || len(b1.Records) != 2 || b1.Records[0].Path != "/1" || b1.Records[1].Path != "/2" ||
		b2.FirstSeq != 2 || len(b2.Records) != 1 || b2.Records[0].Path != "/3" || b1.Boot != b2.Boot || b1.EdgeID != "edge_1" {
		t.Fatalf("batches %+v %+v", b1, b2)
	}
	if c := s.Counts(); c.Shipped != 3 || c.Buffered != 0 || c.Bytes != 0 || c.Failed != 1 {
		t.Fatalf("counts %+v", c)
	}
}

// TestShipperBounds: with the control plane down the buffer holds at
// most MaxRecords records and MaxBytes bytes; the rest are dropped and
// counted, and Record never waits.
func TestShipperBounds(t *testing.T) {
	r := &recorder{wants: map[string][]string{"acct_a": {traffic.HTTPRequestComplete}}}
	ctx := context.Background()
	var last time.Time

	s := New(Config{MaxRecords: 10}, r.post)
	_ = s.flush(ctx, &last)
	r.down = true
	for range 25 {
		s.Record(rec("acct_a", traffic.HTTPRequestComplete, "/x"))
	}
	_ = s.flush(ctx, &last)
	if c := s.Counts(); c.Buffered != 10 || c.Dropped != 15 {
		t.Fatalf("record bound: %+v, want 10 buffered and 15 dropped", c)
	}
	// Back up: the next batch reports the 15 drops by account and type,
	// and the one after it none.
	r.down = false
	n := len(r.batches)
	if err := s.flush(ctx, &last); err != nil {
		t.Fatal(err)
	}
	want := []traffic.DropCount{{AccountID: "acct_a", Type: traffic.HTTPRequestComplete, Count: 15}}
	if got := r.batches[n].Dropped; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("drops reported %+v, want %+v", got, want)
	}
	for _, b := range r.batches[n+1:] {
		if len(b.Dropped) != 0 {
			t.Fatalf("drops reported twice: %+v", b.Dropped)
		}
	}

	r.down = false
	last = time.Time{}
	s = New(Config{MaxBytes: 4 << 10}, r.post)
	_ = s.flush(ctx, &last)
	// Distinct paths of ~1 KiB: the encoding leaves out only strings that
	// repeat the previous record's. A record is kept while the buffer
	// holds less than MaxBytes: four of them.
	long := "/" + strings.Repeat("p", 1000)
	for i := range 10 {
		s.Record(rec("acct_a", traffic.HTTPRequestComplete, long+strconv.Itoa(i)))
	}
	if c := s.Counts(); c.Buffered != 4 || c.Dropped != 6 || c.Bytes < 4<<10 || c.Bytes > 5<<10 {
		t.Fatalf("byte bound: %+v, want 4 buffered (4-5 KiB) and 6 dropped", c)
	}
	// The same path again and again costs tens of bytes a record.
	s, last = New(Config{MaxBytes: 4 << 10}, r.post), time.Time{}
	_ = s.flush(ctx, &last)
	for range 10 {
		s.Record(rec("acct_a", traffic.HTTPRequestComplete, long))
	}
	if c := s.Counts(); c.Buffered != 10 || c.Dropped != 0 || c.Bytes > 2<<10 {
		t.Fatalf("repeated path: %+v, want 10 buffered in under 2 KiB", c)
	}
}

// TestShipperConcurrent: records from several goroutines while Run sends
// batches (some failing) all arrive, each once, with consecutive sequence
// numbers across batches; run it with -race.
func TestShipperConcurrent(t *testing.T) {
	var mu sync.Mutex
	wants := map[string][]string{"acct_a": {traffic.HTTPRequestComplete}}
	var got []traffic.Batch
	calls := 0
	post := func(_ context.Context, b traffic.Batch) (traffic.Answer, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls%5 == 0 {
			return traffic.Answer{}, errors.New("control plane restarting")
		}
		if err := b.DecodeRecords(); err != nil {
			return traffic.Answer{}, err
		}
		if len(b.Records) > 0 {
			got = append(got, b)
		}
		return traffic.Answer{Accepted: len(b.Records), Wants: wants}, nil
	}
	s := New(Config{BatchSize: 7, FlushInterval: time.Millisecond}, post)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	for s.wants.Load() == nil {
		time.Sleep(time.Millisecond)
	}
	const writers, each = 4, 250
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				s.Record(rec("acct_a", traffic.HTTPRequestComplete, fmt.Sprintf("/%d/%d", w, i)))
				if i%3 == 0 { // so that the 1 ms flushes take chunks half full
					time.Sleep(20 * time.Microsecond)
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for s.Counts().Buffered > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	next := uint64(0)
	for _, b := range got {
		if b.FirstSeq != next {
			t.Fatalf("batch starts at %d, want %d", b.FirstSeq, next)
		}
		next += uint64(len(b.Records))
		for _, r := range b.Records {
			if seen[r.Path] {
				t.Fatalf("%s sent twice", r.Path)
			}
			seen[r.Path] = true
		}
	}
	if len(seen) != writers*each || s.Counts().Dropped != 0 {
		t.Fatalf("%d records arrived of %d (counts %+v)", len(seen), writers*each, s.Counts())
	}
}
