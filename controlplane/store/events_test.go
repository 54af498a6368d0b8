package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
)

func TestEventSubscriptionsCRUD(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		other := newFixture(t, s)
		d, err := s.CreateEventDestination(ctx, f.actor, f.account.ID, EventDestinationCreate{Description: "d", Format: "JSON",
			Target: json.RawMessage(`{"webhook":{"url":"https://x.example/","secrets":["whsec_AAAA"]}}`)})
		if err != nil {
			t.Fatal(err)
		}
		od, err := s.CreateEventDestination(ctx, other.actor, other.account.ID, EventDestinationCreate{Format: "JSON", Target: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		// A destination of another account is refused, and nothing is stored.
		before := rev(t, s)
		_, err = s.CreateEventSubscription(ctx, f.actor, f.account.ID, EventSubscriptionCreate{DestinationIDs: []string{od.ID}})
		wantCode(t, err, codes.EventDestinationIDs)
		if rev(t, s) != before {
			t.Fatal("a refused subscription changed the store")
		}
		sub, err := s.CreateEventSubscription(ctx, f.actor, f.account.ID, EventSubscriptionCreate{Description: "s",
			Sources:        []EventSource{{Type: "api_key_created.v0", Filter: `object.description == "x"`, Fields: []string{"object.id"}}},
			DestinationIDs: []string{d.ID}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.GetEventSubscription(ctx, f.account.ID, sub.ID)
		if err != nil || len(got.Sources) != 1 || got.Sources[0].Filter != `object.description == "x"` ||
			len(got.Sources[0].Fields) != 1 || len(got.DestinationIDs) != 1 || got.DestinationIDs[0] != d.ID {
			t.Fatalf("got %+v, %v", got, err)
		}
		if _, err := s.GetEventSubscription(ctx, other.account.ID, sub.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another account sees the subscription: %v", err)
		}
		// Sources: add, a duplicate, update, delete.
		if _, err := s.AddEventSource(ctx, f.actor, f.account.ID, sub.ID, EventSource{Type: "credential_created.v0"}); err != nil {
			t.Fatal(err)
		}
		_, err = s.AddEventSource(ctx, f.actor, f.account.ID, sub.ID, EventSource{Type: "credential_created.v0"})
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.Code != codes.EventSourceExists {
			t.Fatalf("duplicate source: %v", err)
		}
		flt := "true"
		if src, err := s.UpdateEventSource(ctx, f.actor, f.account.ID, sub.ID, "credential_created.v0", EventSourceUpdate{Filter: &flt}); err != nil || src.Filter != "true" {
			t.Fatalf("update source: %+v %v", src, err)
		}
		if err := s.DeleteEventSource(ctx, f.actor, f.account.ID, sub.ID, "credential_created.v0"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetEventSource(ctx, f.account.ID, sub.ID, "credential_created.v0"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted source: %v", err)
		}
		// A destination in use cannot be deleted.
		err = s.DeleteEventDestination(ctx, f.actor, f.account.ID, d.ID)
		if !errors.As(err, &ce) || ce.Code != codes.EventDestinationInUse {
			t.Fatalf("delete in use: %v", err)
		}
		page, more, err := s.ListEventSubscriptions(ctx, f.account.ID, Page{})
		if err != nil || more || len(page) != 1 || len(page[0].Sources) != 1 {
			t.Fatalf("list: %+v %v %v", page, more, err)
		}
		if err := s.DeleteEventSubscription(ctx, f.actor, f.account.ID, sub.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteEventDestination(ctx, f.actor, f.account.ID, d.ID); err != nil {
			t.Fatal(err)
		}
	})
}

// TestEventOutbox checks that a change writes its events to the outbox in
// its own transaction, only for accounts with a destination, with the
// object as stored and without secrets; and that a destination sees only
// events after its creation.
func TestEventOutbox(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		k0, _, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: f.admin.ID, Description: "before"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := s.CreateEventDestination(ctx, f.actor, f.account.ID, EventDestinationCreate{Format: "JSON",
			Target: json.RawMessage(`{"webhook":{"url":"https://x.example/","secrets":["whsec_SECRETSECRET"]}}`)})
		if err != nil {
			t.Fatal(err)
		}
		k1, tok, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: f.admin.ID, Description: "after"})
		if err != nil {
			t.Fatal(err)
		}
		desc := "second"
		if _, err := s.UpdateEventDestination(ctx, f.actor, f.account.ID, d.ID, EventDestinationUpdate{Description: &desc}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAPIKey(ctx, f.actor, f.account.ID, k0.ID); err != nil {
			t.Fatal(err)
		}
		del, err := s.GetEventDelivery(ctx, f.account.ID, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := s.ReadOutbox(ctx, f.account.ID, del.CursorRevision, del.CursorIdx, 100)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, e := range evs {
			types = append(types, e.Type)
			if strings.Contains(string(e.Payload), "SECRETSECRET") || strings.Contains(string(e.Payload), tok.Reveal()) {
				t.Errorf("event %s carries a secret: %s", e.Type, e.Payload)
			}
		}
		want := "api_key_created.v0 event_destination_updated.v0 api_key_deleted.v0"
		if strings.Join(types, " ") != want {
			t.Fatalf("outbox after the destination: %v, want %s", types, want)
		}
		var p struct {
			EventID   string         `json:"event_id"`
			Principal map[string]any `json:"principal"`
			Object    map[string]any `json:"object"`
		}
		if err := json.Unmarshal(evs[0].Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.EventID != evs[0].ID || p.Object["id"] != k1.ID || p.Object["description"] != "after" ||
			p.Object["owner_id"] != f.admin.ID || p.Object["uri"] != "/api_keys/"+k1.ID || p.Principal["id"] != f.admin.ID {
			t.Fatalf("event payload %s", evs[0].Payload)
		}
		// The event ID is the audit event's.
		if _, err := s.GetAuditEvent(ctx, f.account.ID, evs[0].ID); err != nil {
			t.Fatalf("outbox ID %s is not an audit event: %v", evs[0].ID, err)
		}
	})
}

// TestEventDeliveryLease checks that one process at a time holds a
// destination's lease, that a lost lease records nothing, and that a
// failure sets the backoff.
func TestEventDeliveryLease(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		d, err := s.CreateEventDestination(ctx, f.actor, f.account.ID, EventDestinationCreate{Format: "JSON", Target: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		a, ok, err := s.ClaimEventDelivery(ctx, d.ID, "proc-a", time.Minute)
		if err != nil || !ok {
			t.Fatalf("first claim: %v %v", ok, err)
		}
		if _, ok, err := s.ClaimEventDelivery(ctx, d.ID, "proc-b", time.Minute); err != nil || ok {
			t.Fatalf("a second process took a held lease: %v %v", ok, err)
		}
		if ok, err := s.FinishEventDelivery(ctx, d.ID, "proc-b", DeliveryResult{ThroughRevision: a.CursorRevision + 5}); err != nil || ok {
			t.Fatalf("a process without the lease recorded a result: %v %v", ok, err)
		}
		retry := time.Now().Add(time.Hour)
		if ok, err := s.FinishEventDelivery(ctx, d.ID, "proc-a", DeliveryResult{ThroughRevision: a.CursorRevision, ThroughIdx: a.CursorIdx,
			Err: errors.New("connection refused"), RetryAt: retry}); err != nil || !ok {
			t.Fatalf("finish: %v %v", ok, err)
		}
		st, err := s.GetEventDelivery(ctx, f.account.ID, d.ID)
		if err != nil || st.Failures != 1 || st.LastError != "connection refused" || st.LeaseOwner != "" || st.CursorRevision != a.CursorRevision {
			t.Fatalf("state after a failure: %+v %v", st, err)
		}
		if _, ok, err := s.ClaimEventDelivery(ctx, d.ID, "proc-b", time.Minute); err != nil || ok {
			t.Fatalf("claimed during backoff: %v %v", ok, err)
		}
	})
}
