package events

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/traffic"
)

// TestTrafficFilterAndFields: filters of traffic sources type-check against
// the record's fields (status an int, path a string) and match a traffic
// event as the outbox holds it; audit-only fields are refused.
func TestTrafficFilterAndFields(t *testing.T) {
	if err := CheckType(traffic.HTTPRequestComplete); err != nil {
		t.Fatal(err)
	}
	if err := CheckType(traffic.TCPConnectionClosed); err != nil {
		t.Fatal(err)
	}
	f, err := CompileFilterFor(traffic.HTTPRequestComplete, `status >= 400 && path.startsWith("/a") && bytes_out > 10 && duration_seconds < 5.0`)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(status int, path string) map[string]any {
		r := traffic.Record{Type: traffic.HTTPRequestComplete, Start: time.Now(), Duration: 0.5, Status: status, Path: path,
			BytesOut: 100, ClientIP: netip.MustParseAddr("127.0.0.1")}
		b, _ := json.Marshal(trafficPayload{EventID: "ev_x", Record: r})
		m, err := decodeEvent(b)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, c := range []struct {
		status int
		path   string
		want   bool
	}{{404, "/a/b", true}, {200, "/a/b", false}, {500, "/b", false}, {0, "/a", false}} {
		if got := f.Match(ev(c.status, c.path)); got != c.want {
			t.Errorf("status %d path %s: %v, want %v", c.status, c.path, got, c.want)
		}
	}
	for _, bad := range []string{`status >= "400"`, `object.id == "x"`, `path > 3`} {
		_, err := CompileFilterFor(traffic.HTTPRequestComplete, bad)
		wantCode(t, err, codes.EventFilterInvalid)
	}
	_, err = CompileFilterFor("api_key_created.v0", `status >= 400`)
	wantCode(t, err, codes.EventFilterInvalid)
	if err := CheckFieldsFor(traffic.TCPConnectionClosed, []string{"bytes_in", "client_ip", "event_id"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, CheckFieldsFor(traffic.HTTPRequestComplete, []string{"object.id"}), codes.EventFieldsInvalid)
	if got := selectFields(ev(404, "/a"), []string{"status"}); len(got) != 5 || got["status"] != float64(404) {
		t.Errorf("selected %v", got)
	}
}

// TestIngestTraffic: only records of accounts with a matching source
// become events; a retried batch is written once, with the same IDs.
func TestIngestTraffic(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "s.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, err := st.CreateAccount(ctx, store.SystemActor, "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := st.CreateAccount(ctx, store.SystemActor, "b")
	if err != nil {
		t.Fatal(err)
	}
	actor := store.Actor{AccountID: acct.ID, PrincipalID: "system"}
	d, err := st.CreateEventDestination(ctx, actor, acct.ID, store.EventDestinationCreate{Format: "JSON", Target: json.RawMessage(`{"file":{"path":"x"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateEventSubscription(ctx, actor, acct.ID, store.EventSubscriptionCreate{
		Sources: []store.EventSource{{Type: traffic.TCPConnectionClosed}}, DestinationIDs: []string{d.ID}}); err != nil {
		t.Fatal(err)
	}
	dl, err := New(Config{}, st)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b := traffic.Batch{EdgeID: "edge_1", Boot: "b1", FirstSeq: 7, Records: []traffic.Record{
		{Type: traffic.HTTPRequestComplete, AccountID: acct.ID, Start: now},  // type not wanted
		{Type: traffic.TCPConnectionClosed, AccountID: other.ID, Start: now}, // account not wanted
		{Type: traffic.TCPConnectionClosed, AccountID: acct.ID, BytesIn: 5, Start: now, Duration: 0.25},
		{Type: traffic.TCPConnectionClosed, AccountID: "", Start: now}, // no endpoint
		{Type: traffic.TCPConnectionClosed, AccountID: acct.ID, BytesIn: 6, Start: now.Add(time.Millisecond), Path: "/x\u2028"},
		{Type: traffic.TCPConnectionClosed, AccountID: acct.ID, BytesIn: 7}, // year 1: a JSON row of its own
	}}
	for i := range 2 { // the second time as a retry
		ans, err := dl.IngestTraffic(ctx, b)
		if err != nil || ans.Accepted != 3 || ans.Dropped != 0 || len(ans.Wants) != 1 || ans.Wants[acct.ID][0] != traffic.TCPConnectionClosed {
			t.Fatalf("ingest %d: %+v %v", i, ans, err)
		}
	}
	del, err := st.GetEventDelivery(ctx, acct.ID, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := st.ReadOutbox(ctx, acct.ID, del.CursorRevision, del.CursorIdx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var trRows []store.OutboxEvent // after the subscription's audit event
	for _, r := range rows {
		if r.Source == store.OutboxSourceTraffic {
			trRows = append(trRows, r)
		}
	}
	rows = trRows
	tr := expandOutbox(rows, del.CursorRevision, del.CursorIdx, 100)
	// Records 2 and 4 packed in one row (seq 9 and 11), record 5 (seq 12)
	// in a row of its own; each event as a row of one would hold it.
	if len(tr) != 3 || len(rows) != 2 || rows[0].Count != 2 || rows[0].Packed == nil || rows[1].Packed != nil {
		t.Fatalf("traffic rows %+v, events %+v", rows, tr)
	}
	for i, k := range []int{2, 4, 5} {
		r := b.Records[k]
		id := TrafficEventID("edge_1", "b1", 7+uint64(k))
		want, err := appendTrafficPayload(nil, id, recordEnd(&r), &r)
		if err != nil {
			t.Fatal(err)
		}
		if e := tr[i]; e.ID != id || e.Type != traffic.TCPConnectionClosed || string(e.Payload) != string(want) ||
			!e.CreatedAt.Equal(recordEnd(&r)) || (i > 0 && e.Idx <= tr[i-1].Idx) {
			t.Fatalf("event %d: %s %s at %d %v %s; want %s %s", i, e.ID, e.Type, e.Idx, e.CreatedAt, e.Payload, id, want)
		}
	}
	var p map[string]any
	if err := json.Unmarshal(tr[0].Payload, &p); err != nil || p["event_id"] != tr[0].ID || p["bytes_in"] != float64(5) || p["account_id"] != acct.ID {
		t.Fatalf("payload %s (%v)", tr[0].Payload, err)
	}
	// A delivery that stopped inside the packed row resumes after it.
	if rest := expandOutbox(rows, tr[0].Revision, tr[0].Idx, 100); len(rest) != 2 || rest[0].ID != tr[1].ID || rest[1].ID != tr[2].ID {
		t.Fatalf("after the first event: %+v", rest)
	}
	if two := expandOutbox(rows, del.CursorRevision, del.CursorIdx, 2); len(two) != 2 || two[1].ID != tr[1].ID {
		t.Fatalf("limit 2: %+v", two)
	}
	b.Records = []traffic.Record{{Type: "other.v0"}}
	_, err = dl.IngestTraffic(ctx, b)
	wantCode(t, err, codes.EdgeBadRequest)

	// A cap of 4 with three events in: of three records one fits, two are
	// dropped; with the edge's own drops (an unwanted account's ignored)
	// the destination's status counts them.
	capped, err := New(Config{TrafficCap: 4}, st)
	if err != nil {
		t.Fatal(err)
	}
	rec := traffic.Record{Type: traffic.TCPConnectionClosed, AccountID: acct.ID, Start: now}
	ans, err := capped.IngestTraffic(ctx, traffic.Batch{EdgeID: "edge_1", Boot: "b2", Records: []traffic.Record{rec, rec, rec},
		Dropped: []traffic.DropCount{{AccountID: acct.ID, Type: traffic.TCPConnectionClosed, Count: 4}, {AccountID: other.ID, Type: traffic.TCPConnectionClosed, Count: 9}}})
	if err != nil || ans.Accepted != 1 || ans.Dropped != 2 {
		t.Fatalf("capped ingest: %+v %v", ans, err)
	}
	s, err := Status(ctx, st, d, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.TrafficDropped[traffic.TCPConnectionClosed]; len(s.TrafficDropped) != 1 || got != (TrafficDropped{Edge: 4, Outbox: 2}) {
		t.Fatalf("status traffic drops %+v", s.TrafficDropped)
	}
}

// TestTrafficPayloadJSON: the outbox payload IngestTraffic writes is
// byte for byte json.Marshal of trafficPayload, for records with and
// without the optional fields and with characters JSON escapes.
func TestTrafficPayloadJSON(t *testing.T) {
	end := time.Date(2026, 12, 7, 10, 0, 0, 123456789, time.UTC)
	for _, r := range []traffic.Record{
		{Type: traffic.HTTPRequestComplete, Start: end.Add(-time.Millisecond), Duration: 0.001, Region: "us", EdgeID: "edge_1",
			AccountID: "acct_1", EndpointID: "ep_1", SessionID: "ts_1", EndpointKind: "https", ClientIP: netip.MustParseAddr("192.0.2.1"),
			TLSVersion: "1.3", Host: "a.example", Method: "POST", Path: `/q?<a>&"b"` + "\u2028\xff", Proto: "HTTP/2.0", Status: 502,
			Code: "TG_3004", IPPolicy: traffic.IPPolicyAllow, BytesIn: 5, BytesOut: 7},
		{Type: traffic.TCPConnectionClosed, Start: end, EndpointKind: "tcp", IPPolicy: traffic.IPPolicyNone},
	} {
		got, err := appendTrafficPayload([]byte("kept"), "ev_t0123", end, &r)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(trafficPayload{EventID: "ev_t0123", EventTimestamp: end.Format(time.RFC3339Nano), Record: r})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "kept"+string(want) {
			t.Errorf("payload\n%s\nwant\nkept%s", got, want)
		}
	}
}
