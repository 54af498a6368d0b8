package store

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestTrafficOutbox checks traffic rows in the outbox: they follow the
// audit events before them and precede those after them without bumping
// the revision, a retried batch is written once, the per-account cap
// drops and counts, and the prune removes delivered traffic rows.
func TestTrafficOutbox(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		d := subscribeHTTPTraffic(t, s, f)
		wants, err := s.TrafficWants(ctx, []string{"http_request_complete.v0", "tcp_connection_closed.v0"})
		if err != nil || len(wants) != 1 || len(wants[f.account.ID]) != 1 || wants[f.account.ID][0] != "http_request_complete.v0" {
			t.Fatalf("wants %v (%v)", wants, err)
		}
		// room against a cap of 5, as events.Deliverer computes it.
		room := func() map[string]int {
			n, err := s.TrafficRows(ctx, f.account.ID)
			if err != nil {
				t.Fatal(err)
			}
			return map[string]int{f.account.ID: max(5-n, 0)}
		}
		batch := func(first, n int) []TrafficEvent {
			var out []TrafficEvent
			for i := first; i < first+n; i++ {
				out = append(out, TrafficEvent{ID: fmt.Sprintf("ev_t%d", i), AccountID: f.account.ID, Type: "http_request_complete.v0",
					Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)), At: time.Now()})
			}
			return out
		}
		r0 := rev(t, s)
		res, err := s.AppendTrafficEvents(ctx, batch(0, 3), room())
		if err != nil || res != (TrafficWrite{Written: 3}) {
			t.Fatalf("first batch: %+v %v", res, err)
		}
		if r := rev(t, s); r != r0 {
			t.Errorf("a traffic batch moved the revision from %d to %d", r0, r)
		}
		// The same batch again (a retry): nothing new.
		if res, err := s.AppendTrafficEvents(ctx, batch(0, 3), nil); err != nil || res != (TrafficWrite{Duplicates: 3}) {
			t.Fatalf("retried batch: %+v %v", res, err)
		}
		// An audit event after them, then more traffic: order kept.
		if _, _, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: f.admin.ID}); err != nil {
			t.Fatal(err)
		}
		// The cap of 5: two more fit, three are dropped.
		if res, err := s.AppendTrafficEvents(ctx, batch(3, 5), room()); err != nil || res != (TrafficWrite{Written: 2, Dropped: 3}) {
			t.Fatalf("batch past the cap: %+v %v", res, err)
		}
		del, err := s.GetEventDelivery(ctx, f.account.ID, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := s.ReadOutbox(ctx, f.account.ID, del.CursorRevision, del.CursorIdx, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			if e.Source == OutboxSourceTraffic {
				got = append(got, e.ID)
			} else if e.Type != "event_subscription_created.v0" {
				got = append(got, e.Type)
			}
		}
		if want := "[ev_t0 ev_t1 ev_t2 api_key_created.v0 ev_t3 ev_t4]"; fmt.Sprint(got) != want {
			t.Fatalf("outbox %v, want %s", got, want)
		}
		// Delivered through ev_t1: the prune removes ev_t0 and ev_t1 only,
		// though they share their revision with ev_t2.
		var at OutboxEvent
		for _, e := range evs {
			if e.ID == "ev_t1" {
				at = e
			}
		}
		deliverThrough(t, s, d.ID, DeliveryResult{ThroughRevision: at.Revision, ThroughIdx: at.Idx, Delivered: 2})
		if _, err := s.PruneOutbox(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		// Two rows gone: room for two under the cap again.
		if res, err := s.AppendTrafficEvents(ctx, batch(10, 3), room()); err != nil || res != (TrafficWrite{Written: 2, Dropped: 1}) {
			t.Fatalf("batch after the prune: %+v %v", res, err)
		}
	})
}

// TestTrafficPackedRows checks packed traffic rows: each takes as many
// positions as it holds events, a delivery may stop inside one (ReadOutbox
// returns it again, PendingEvents counts only its undelivered part, the
// prune keeps it), the cap and the counts are in events, a retried row is
// a duplicate of all its events, and a bad count writes nothing.
func TestTrafficPackedRows(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		d := subscribeHTTPTraffic(t, s, f)
		// Everything before the traffic rows is delivered.
		deliverThrough(t, s, d.ID, DeliveryResult{ThroughRevision: rev(t, s), ThroughIdx: trafficIdxBase - 1})
		pack := func(id string, n int) TrafficEvent {
			return TrafficEvent{ID: id, AccountID: f.account.ID, Type: "http_request_complete.v0",
				Packed: []byte{0, 1, 2, byte(n)}, Count: n, At: time.Now()}
		}
		res, err := s.AppendTrafficEvents(ctx, []TrafficEvent{pack("ev_tA", 4), pack("ev_tB", 3)}, nil)
		if err != nil || res != (TrafficWrite{Written: 7}) {
			t.Fatalf("two packed rows: %+v %v", res, err)
		}
		// A retry of the second with a new third: the second's events are duplicates.
		res, err = s.AppendTrafficEvents(ctx, []TrafficEvent{pack("ev_tB", 3), pack("ev_tC", 2)}, nil)
		if err != nil || res != (TrafficWrite{Written: 2, Duplicates: 3}) {
			t.Fatalf("retried row: %+v %v", res, err)
		}
		if n, err := s.TrafficRows(ctx, f.account.ID); err != nil || n != 9 {
			t.Fatalf("TrafficRows %d %v, want 9", n, err)
		}
		for _, bad := range []int{0, -1, MaxPackedEvents + 1} {
			if _, err := s.AppendTrafficEvents(ctx, []TrafficEvent{pack("ev_tOK", 1), pack("ev_tBad", bad)}, nil); err == nil {
				t.Fatalf("a packed row of %d events was accepted", bad)
			}
		}
		// The cap counts events: with room for 10, a row of 2 fits, the next of 1 not (the newest are refused).
		res, err = s.AppendTrafficEvents(ctx, []TrafficEvent{pack("ev_tD", 2), pack("ev_tE", 1)}, map[string]int{f.account.ID: 1})
		if err != nil || res != (TrafficWrite{Written: 1, Dropped: 2}) {
			t.Fatalf("rows past the room: %+v %v", res, err)
		}
		del, err := s.GetEventDelivery(ctx, f.account.ID, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.ReadOutbox(ctx, f.account.ID, del.CursorRevision, del.CursorIdx, 100)
		if err != nil || len(rows) != 4 {
			t.Fatalf("read %d rows (%v), want 4", len(rows), err)
		}
		for i, want := range []struct {
			id string
			n  int
		}{{"ev_tA", 4}, {"ev_tB", 3}, {"ev_tC", 2}, {"ev_tE", 1}} {
			r := rows[i]
			if r.ID != want.id || r.Count != want.n || len(r.Packed) != 4 || r.Packed[3] != byte(want.n) || len(r.Payload) != 0 {
				t.Fatalf("row %d: %s n=%d packed=%v payload=%q, want %s n=%d", i, r.ID, r.Count, r.Packed, r.Payload, want.id, want.n)
			}
			// Rows do not overlap (a duplicate leaves a gap); A and B are adjacent.
			if i > 0 && r.Idx < rows[i-1].Idx+rows[i-1].Count || i == 1 && r.Idx != rows[0].Idx+4 {
				t.Fatalf("row %d starts at %d, after row %d (%d+%d)", i, r.Idx, i-1, rows[i-1].Idx, rows[i-1].Count)
			}
		}
		// limit counts events: 5 are in the first two rows.
		if two, err := s.ReadOutbox(ctx, f.account.ID, del.CursorRevision, del.CursorIdx, 5); err != nil || len(two) != 2 {
			t.Fatalf("read %d rows for 5 events (%v), want 2", len(two), err)
		}
		// Delivered through the second event of ev_tB: B stays readable and kept.
		at := rows[1].Idx + 1
		deliverThrough(t, s, d.ID, DeliveryResult{ThroughRevision: rows[1].Revision, ThroughIdx: at, Delivered: 6})
		del, err = s.GetEventDelivery(ctx, f.account.ID, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if n, _, err := s.PendingEvents(ctx, del); err != nil || n != 4 {
			t.Fatalf("pending %d %v, want 4 (one of ev_tB, ev_tC's two, ev_tE)", n, err)
		}
		if _, err := s.PruneOutbox(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		rows, err = s.ReadOutbox(ctx, f.account.ID, del.CursorRevision, del.CursorIdx, 100)
		if err != nil || len(rows) != 3 || rows[0].ID != "ev_tB" {
			t.Fatalf("after the prune: %d rows, first %v (%v); want ev_tB, ev_tC, ev_tE", len(rows), rows, err)
		}
		// One event left in B, two in C: a limit of 3 reads B and C.
		if two, err := s.ReadOutbox(ctx, f.account.ID, del.CursorRevision, del.CursorIdx, 3); err != nil || len(two) != 2 {
			t.Fatalf("read %d rows for 3 events inside B (%v), want 2", len(two), err)
		}
		if n, err := s.TrafficRows(ctx, f.account.ID); err != nil || n != 6 {
			t.Fatalf("TrafficRows after the prune %d %v, want 6 (ev_tA pruned)", n, err)
		}
		// The row's last event delivered: nothing of B is read any more.
		rows, err = s.ReadOutbox(ctx, f.account.ID, del.CursorRevision, at+1, 100)
		if err != nil || len(rows) != 2 || rows[0].ID != "ev_tC" {
			t.Fatalf("after B: %d rows (%v), want ev_tC, ev_tE", len(rows), err)
		}
	})
}

// TestTrafficDrops: drop counts add up per account and type, a
// destination sees those of the types its subscriptions select, and an
// unknown account's counts are ignored.
func TestTrafficDrops(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		mk := func() string {
			d, err := s.CreateEventDestination(ctx, f.actor, f.account.ID, EventDestinationCreate{Format: "JSON",
				Target: json.RawMessage(`{"webhook":{"url":"https://x.example/"}}`)})
			if err != nil {
				t.Fatal(err)
			}
			return d.ID
		}
		httpDest, tcpDest := mk(), mk()
		for dest, typ := range map[string]string{httpDest: "http_request_complete.v0", tcpDest: "tcp_connection_closed.v0"} {
			if _, err := s.CreateEventSubscription(ctx, f.actor, f.account.ID, EventSubscriptionCreate{
				Sources: []EventSource{{Type: typ}}, DestinationIDs: []string{dest}}); err != nil {
				t.Fatal(err)
			}
		}
		h, c := "http_request_complete.v0", "tcp_connection_closed.v0"
		for _, batch := range [][]TrafficDrop{
			{{AccountID: f.account.ID, Type: h, Edge: 3}, {AccountID: "acct_gone", Type: h, Edge: 9}},
			{{AccountID: f.account.ID, Type: h, Outbox: 2, Edge: 1}, {AccountID: f.account.ID, Type: c, Outbox: 5}},
		} {
			if err := s.AddTrafficDrops(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.TrafficDropsFor(ctx, f.account.ID, httpDest)
		if err != nil || len(got) != 1 || got[h].Edge != 4 || got[h].Outbox != 2 {
			t.Fatalf("http destination's drops: %+v %v", got, err)
		}
		got, err = s.TrafficDropsFor(ctx, f.account.ID, tcpDest)
		if err != nil || len(got) != 1 || got[c].Edge != 0 || got[c].Outbox != 5 {
			t.Fatalf("tcp destination's drops: %+v %v", got, err)
		}
	})
}

// subscribeHTTPTraffic gives the fixture's account a webhook destination
// and a subscription of it to http_request_complete.v0; it returns the
// destination.
func subscribeHTTPTraffic(t *testing.T, s *Store, f fixture) *EventDestination {
	t.Helper()
	ctx := testCtx(t)
	d, err := s.CreateEventDestination(ctx, f.actor, f.account.ID, EventDestinationCreate{Format: "JSON",
		Target: json.RawMessage(`{"webhook":{"url":"https://x.example/"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateEventSubscription(ctx, f.actor, f.account.ID, EventSubscriptionCreate{
		Sources: []EventSource{{Type: "http_request_complete.v0"}}, DestinationIDs: []string{d.ID}}); err != nil {
		t.Fatal(err)
	}
	return d
}

// deliverThrough records a delivery of the destination with result r, as
// a deliverer holding its lease would.
func deliverThrough(t *testing.T, s *Store, destID string, r DeliveryResult) {
	t.Helper()
	ctx := testCtx(t)
	if _, ok, err := s.ClaimEventDelivery(ctx, destID, "me", time.Minute); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if ok, err := s.FinishEventDelivery(ctx, destID, "me", r); !ok || err != nil {
		t.Fatalf("finish: %v %v", ok, err)
	}
}
