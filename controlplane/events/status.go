package events

import (
	"context"
	"time"

	"github.com/tollgate/tollgate/controlplane/store"
)

// DeliveryStatus is a destination's delivery progress, as the API's
// tollgate_delivery and the dashboard's events page show it.
type DeliveryStatus struct {
	Delivered     int64
	Dropped       int64
	Pending       int64         // events in the outbox not yet delivered
	Lag           time.Duration // age of the oldest pending event; 0 when none
	Failures      int           // consecutive failed attempts
	LastSuccessAt time.Time     // zero: never
	LastErrorAt   time.Time     // zero: never
	LastError     string        // or why this control plane does not deliver to the target
	NextAttemptAt time.Time     // zero: now
	// TrafficDropped holds, by traffic event type that a subscription
	// naming the destination selects, the account's events of that type
	// that never reached the outbox: dropped at an edge (buffer full) or
	// at the outbox cap. They are the account's, shared by every
	// destination of that type. Types without drops are absent.
	TrafficDropped map[string]TrafficDropped
}

// TrafficDropped counts dropped traffic events of one type.
type TrafficDropped struct {
	Edge   int64 // records an edge dropped, its buffer full
	Outbox int64 // events refused at --events-traffic-cap
}

// Status reads destination d's delivery status from st. A target this
// control plane does not deliver to (o) reports why as LastError when no
// attempt failed. Errors are the store's (no delivery row yet included).
func Status(ctx context.Context, st *store.Store, d *store.EventDestination, o TargetOptions) (*DeliveryStatus, error) {
	del, err := st.GetEventDelivery(ctx, d.AccountID, d.ID)
	if err != nil {
		return nil, err
	}
	pending, oldest, err := st.PendingEvents(ctx, del)
	if err != nil {
		return nil, err
	}
	s := &DeliveryStatus{Delivered: del.Delivered, Dropped: del.Dropped, Pending: pending, Failures: del.Failures,
		LastSuccessAt: del.LastSuccessAt, LastErrorAt: del.LastErrorAt, LastError: del.LastError, NextAttemptAt: del.NextAttemptAt}
	if !oldest.IsZero() {
		s.Lag = time.Since(oldest)
	}
	drops, err := st.TrafficDropsFor(ctx, d.AccountID, d.ID)
	if err != nil {
		return nil, err
	}
	for typ, dr := range drops {
		if s.TrafficDropped == nil {
			s.TrafficDropped = map[string]TrafficDropped{}
		}
		s.TrafficDropped[typ] = TrafficDropped{Edge: dr.Edge, Outbox: dr.Outbox}
	}
	if t, err := ParseTarget(d.Target, o); err == nil && !t.Delivered() && s.LastError == "" {
		s.LastError = t.ErrNotDelivered().Error()
	}
	return s, nil
}

// CheckSource checks an event source: its type (CheckType), its filter
// (CEL, type-checked against the type's fields: CompileFilterFor) and its
// fields (CheckFieldsFor); nil filter or fields are unset. The API and the
// dashboard both check sources with it. Errors are *codes.Error.
func CheckSource(typ string, filter *string, fields *[]string) (store.EventSource, error) {
	src := store.EventSource{Type: typ}
	if err := CheckType(typ); err != nil {
		return src, err
	}
	if filter != nil {
		if _, err := CompileFilterFor(typ, *filter); err != nil {
			return src, err
		}
		src.Filter = *filter
	}
	if fields != nil {
		if err := CheckFieldsFor(typ, *fields); err != nil {
			return src, err
		}
		src.Fields = *fields
	}
	return src, nil
}
