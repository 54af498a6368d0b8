package accesslog

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/tollgate/tollgate/traffic"
)

func record(i int) traffic.Record {
	return traffic.Record{Type: traffic.HTTPRequestComplete, Start: time.Unix(int64(i), 0).UTC(), Region: "us",
		EdgeID: "edge_us", EndpointKind: "https", ClientIP: netip.MustParseAddr("127.0.0.1"), Method: "GET",
		Path: "/", Status: 200, IPPolicy: traffic.IPPolicyNone}
}

// TestWritesOneLinePerRecord writes records through a pipe and reads them
// back as JSON lines, in order.
func TestWritesOneLinePerRecord(t *testing.T) {
	pr, pw := io.Pipe()
	l, err := New(pw, Config{Buffer: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = l.Run(ctx); pw.Close(); close(done) }()
	const n = 5
	for i := range n {
		l.Record(record(i))
	}
	sc := bufio.NewScanner(pr)
	for i := range n {
		if !sc.Scan() {
			t.Fatalf("line %d missing: %v", i, sc.Err())
		}
		var r traffic.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if r.Start.Unix() != int64(i) || r.Method != "GET" {
			t.Errorf("line %d: %+v", i, r)
		}
	}
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	<-done
	if c := l.Counts(); c.Written != n || c.Dropped != 0 {
		t.Errorf("counts %+v, want %d written, none dropped", c, n)
	}
}

// TestFullBufferDrops: with no writer running, Record never blocks; what
// does not fit in the buffer is counted as dropped.
func TestFullBufferDrops(t *testing.T) {
	l, err := New(io.Discard, Config{Buffer: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		l.Record(record(i)) // would block forever if Record waited for room
	}
	if c := l.Counts(); c.Dropped != 6 || c.Buffered != 4 {
		t.Errorf("counts %+v, want 6 dropped and 4 buffered", c)
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(nil, Config{}); err == nil {
		t.Error("nil writer accepted")
	}
	if _, err := New(io.Discard, Config{Buffer: -1}); err == nil {
		t.Error("negative buffer accepted")
	}
}

// TestRecordAllocatesNothing: the hot path copies the record into the
// buffer or drops it.
func TestRecordAllocatesNothing(t *testing.T) {
	l, _ := New(io.Discard, Config{Buffer: 1})
	r := record(1)
	if n := testing.AllocsPerRun(100, func() { l.Record(r) }); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
}
