package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
)

// Event subscriptions, their sources and event destinations
// (docs/events.md). The store keeps what the API is given; the events
// package checks types, filters and targets before they get here, so a
// refused request stores nothing.
//
// Invariants kept here:
//   - a subscription names only destinations of its own account, and a
//     destination a subscription names cannot be deleted
//     (codes.EventDestinationInUse);
//   - every destination has one event_deliveries row, created with it at
//     the outbox position of its own creation: a destination receives the
//     events committed after it was created, never older ones.

// MaxSubscriptionDestinations and MaxSubscriptionSources bound one
// subscription.
const (
	MaxSubscriptionDestinations = 10
	MaxSubscriptionSources      = 100
)

// EventDestination is where an account's events go (ed_...). Target is the
// API's target object as JSON, secrets included: render it with the
// events package, which leaves them out.
type EventDestination struct {
	ID          string
	AccountID   string
	Description string
	Metadata    string
	Format      string // "JSON"
	Target      json.RawMessage
	CreatedAt   time.Time
}

// EventDestinationCreate is the input of CreateEventDestination.
type EventDestinationCreate struct {
	Description, Metadata, Format string
	Target                        json.RawMessage
}

// EventDestinationUpdate is the input of UpdateEventDestination; nil
// fields stay as they are.
type EventDestinationUpdate struct {
	Description, Metadata, Format *string
	Target                        json.RawMessage
}

// EventSource is one event type a subscription selects, with an optional
// CEL filter ("" passes every event) and the fields to send (none: all).
type EventSource struct {
	Type   string
	Filter string
	Fields []string
}

// EventSubscription selects events (Sources) for destinations (ed_ IDs,
// in the order given) (esb_...).
type EventSubscription struct {
	ID             string
	AccountID      string
	Description    string
	Metadata       string
	Sources        []EventSource
	DestinationIDs []string
	CreatedAt      time.Time
}

// EventSubscriptionCreate is the input of CreateEventSubscription.
type EventSubscriptionCreate struct {
	Description, Metadata string
	Sources               []EventSource
	DestinationIDs        []string
}

// EventSubscriptionUpdate is the input of UpdateEventSubscription; nil
// fields stay as they are; Sources and DestinationIDs replace the whole
// list.
type EventSubscriptionUpdate struct {
	Description, Metadata *string
	Sources               *[]EventSource
	DestinationIDs        *[]string
}

// EventSourceUpdate is the input of UpdateEventSource; nil fields stay.
type EventSourceUpdate struct {
	Filter *string
	Fields *[]string
}

// ---- destinations ----

const eventDestinationColumns = `SELECT id, account_id, description, metadata, format, target, created_at FROM event_destinations`

func scanEventDestination(r scanner) (EventDestination, error) {
	var d EventDestination
	var target string
	var created int64
	err := r.Scan(&d.ID, &d.AccountID, &d.Description, &d.Metadata, &d.Format, &target, &created)
	d.Target, d.CreatedAt = json.RawMessage(target), fromMicros(created)
	return d, err
}

// CreateEventDestination creates an event destination and its delivery
// state, starting after the events committed so far. Errors: *codes.Error
// for invalid description or metadata; ErrNotFound for a missing account.
func (s *Store) CreateEventDestination(ctx context.Context, actor Actor, accountID string, in EventDestinationCreate) (*EventDestination, error) {
	if err := validateOptional(&in.Description, &in.Metadata); err != nil {
		return nil, err
	}
	var d *EventDestination
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM accounts WHERE id = $1`, accountID, "account"); err != nil {
			return err
		}
		d = &EventDestination{ID: ids.New(ids.PrefixEventDest), AccountID: accountID, Description: in.Description,
			Metadata: in.Metadata, Format: in.Format, Target: in.Target, CreatedAt: fromMicros(t.stamp())}
		if _, err := t.exec(ctx, `INSERT INTO event_destinations (id, account_id, description, metadata, format, target, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, d.ID, accountID, d.Description, d.Metadata, d.Format, string(d.Target), t.stamp()); err != nil {
			return fmt.Errorf("creating event destination: %w", err)
		}
		// The cursor is past every event of this unit of work (including
		// this destination's own creation): it gets what commits later.
		if _, err := t.exec(ctx, `INSERT INTO event_deliveries (destination_id, account_id, cursor_revision, cursor_idx,
			lease_owner, lease_until, next_attempt_at, failures, delivered, dropped, last_success_at, last_error_at, last_error, last_event_at)
			VALUES ($1, $2, $3, $4, '', 0, 0, 0, 0, 0, 0, 0, '', 0)`, d.ID, accountID, t.rev, maxOutboxIdx); err != nil {
			return fmt.Errorf("creating delivery state of %s: %w", d.ID, err)
		}
		t.audit("event_destination_created.v0", accountID, d.ID, map[string]any{"description": d.Description, "format": d.Format})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// GetEventDestination returns an event destination of the account, or
// ErrNotFound.
func (s *Store) GetEventDestination(ctx context.Context, accountID, id string) (*EventDestination, error) {
	return getByID(ctx, s.rdb, eventDestinationColumns, "event destination", id, accountID, scanEventDestination)
}

// ListEventDestinations returns one page of the account's event
// destinations, newest first, and whether more remain.
func (s *Store) ListEventDestinations(ctx context.Context, accountID string, page Page) ([]EventDestination, bool, error) {
	return listPage(ctx, s.rdb, eventDestinationColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanEventDestination)
}

// UpdateEventDestination changes an event destination. A new target keeps
// the delivery position: events not yet delivered go to the new target.
// Errors: *codes.Error for invalid text, ErrNotFound.
func (s *Store) UpdateEventDestination(ctx context.Context, actor Actor, accountID, id string, in EventDestinationUpdate) (*EventDestination, error) {
	if err := validateOptional(in.Description, in.Metadata); err != nil {
		return nil, err
	}
	var d *EventDestination
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if d, err = getByID(ctx, t.sql, eventDestinationColumns, "event destination", id, accountID, scanEventDestination); err != nil {
			return err
		}
		changes := map[string]any{}
		setField(&d.Description, in.Description, "description", changes)
		setField(&d.Metadata, in.Metadata, "metadata", changes)
		setField(&d.Format, in.Format, "format", changes)
		if in.Target != nil && string(in.Target) != string(d.Target) {
			d.Target = in.Target
			changes["target"] = "changed" // the target may hold secrets: never in the audit log
		}
		if len(changes) == 0 {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE event_destinations SET description = $1, metadata = $2, format = $3, target = $4 WHERE id = $5`,
			d.Description, d.Metadata, d.Format, string(d.Target), id); err != nil {
			return fmt.Errorf("updating event destination %s: %w", id, err)
		}
		// A new target is worth an attempt now, not after the old one's backoff.
		if _, err := t.exec(ctx, `UPDATE event_deliveries SET next_attempt_at = 0, failures = 0 WHERE destination_id = $1`, id); err != nil {
			return fmt.Errorf("resetting delivery of %s: %w", id, err)
		}
		t.audit("event_destination_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// DeleteEventDestination deletes an event destination with its delivery
// state and undelivered position. One that a subscription names is
// refused with a *ConflictError (codes.EventDestinationInUse). Errors also:
// ErrNotFound.
func (s *Store) DeleteEventDestination(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		subs, err := t.strings(ctx, `SELECT subscription_id FROM event_subscription_destinations WHERE destination_id = $1
			ORDER BY subscription_id`, id)
		if err != nil {
			return fmt.Errorf("reading subscriptions of %s: %w", id, err)
		}
		if len(subs) > 0 {
			return conflict(codes.EventDestinationInUse,
				"The event destination %s is used by the event subscription(s) %s: remove it from their destination_ids, or delete them, first.",
				id, strings.Join(subs, ", "))
		}
		if _, err := t.exec(ctx, `DELETE FROM event_deliveries WHERE destination_id = $1 AND account_id = $2`, id, accountID); err != nil {
			return fmt.Errorf("deleting delivery state of %s: %w", id, err)
		}
		if err := t.deleteOne(ctx, "event_destinations", "event destination", accountID, id); err != nil {
			return err
		}
		t.audit("event_destination_deleted.v0", accountID, id, map[string]any{})
		return nil
	})
	return err
}

// ---- subscriptions ----

const eventSubscriptionColumns = `SELECT id, account_id, description, metadata, created_at FROM event_subscriptions`

func scanEventSubscription(r scanner) (EventSubscription, error) {
	var x EventSubscription
	var created int64
	err := r.Scan(&x.ID, &x.AccountID, &x.Description, &x.Metadata, &created)
	x.CreatedAt = fromMicros(created)
	return x, err
}

// checkSubscriptionLists checks sources and destination IDs before a unit of
// work: bounded, well-formed, no repeats.
func checkSubscriptionLists(sources []EventSource, destIDs []string) error {
	if len(destIDs) > MaxSubscriptionDestinations {
		return codes.NewError(codes.EventDestinationIDs, "destination_ids may name at most %d event destinations; it names %d.",
			MaxSubscriptionDestinations, len(destIDs))
	}
	for i, id := range destIDs {
		if err := checkID(id, ids.PrefixEventDest); err != nil {
			return err
		}
		if slices.Contains(destIDs[:i], id) {
			return codes.NewError(codes.EventDestinationIDs, "destination_ids names %s twice.", id)
		}
	}
	if len(sources) > MaxSubscriptionSources {
		return codes.NewError(codes.EventTypeInvalid, "A subscription may have at most %d sources; this one has %d.",
			MaxSubscriptionSources, len(sources))
	}
	for i, src := range sources {
		for _, prev := range sources[:i] {
			if prev.Type == src.Type {
				return codes.NewError(codes.EventSourceExists, "sources names the type %q twice.", truncate(src.Type, 80))
			}
		}
	}
	return nil
}

// setSubscriptionLists replaces the sources and destinations of sub in t.
// Every destination must be one of the account's (codes.EventDestinationIDs).
func (t *tx) setSubscriptionLists(ctx context.Context, accountID, subID string, sources *[]EventSource, destIDs *[]string) error {
	if destIDs != nil {
		if _, err := t.exec(ctx, `DELETE FROM event_subscription_destinations WHERE subscription_id = $1`, subID); err != nil {
			return fmt.Errorf("replacing destinations of %s: %w", subID, err)
		}
		for i, id := range *destIDs {
			var one int
			err := t.queryRow(ctx, `SELECT 1 FROM event_destinations WHERE id = $1 AND account_id = $2`, id, accountID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return codes.NewError(codes.EventDestinationIDs, "destination_ids names %s, which is not an event destination of this account.", id)
			}
			if err != nil {
				return fmt.Errorf("reading event destination %s: %w", id, err)
			}
			if _, err := t.exec(ctx, `INSERT INTO event_subscription_destinations (subscription_id, destination_id, position)
				VALUES ($1, $2, $3)`, subID, id, i); err != nil {
				return fmt.Errorf("linking %s to %s: %w", subID, id, err)
			}
		}
	}
	if sources != nil {
		if _, err := t.exec(ctx, `DELETE FROM event_sources WHERE subscription_id = $1`, subID); err != nil {
			return fmt.Errorf("replacing sources of %s: %w", subID, err)
		}
		for i, src := range *sources {
			if err := t.insertSource(ctx, subID, src, i); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *tx) insertSource(ctx context.Context, subID string, src EventSource, pos int) error {
	fields, _ := json.Marshal(nonNil(src.Fields))
	if _, err := t.exec(ctx, `INSERT INTO event_sources (subscription_id, type, filter, fields, position) VALUES ($1, $2, $3, $4, $5)`,
		subID, src.Type, src.Filter, string(fields), pos); err != nil {
		if isUniqueViolation(err) {
			return conflict(codes.EventSourceExists, "The event subscription %s has a source of type %q already; update it instead.", subID, src.Type)
		}
		return fmt.Errorf("adding source %s to %s: %w", src.Type, subID, err)
	}
	return nil
}

// loadSubscriptionLists fills the sources and destination IDs of subs.
func loadSubscriptionLists(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, subs []EventSubscription) error {
	for i := range subs {
		x := &subs[i]
		x.Sources, x.DestinationIDs = []EventSource{}, []string{}
		rows, err := q.QueryContext(ctx, `SELECT type, filter, fields FROM event_sources WHERE subscription_id = $1 ORDER BY position`, x.ID)
		if err != nil {
			return fmt.Errorf("reading sources of %s: %w", x.ID, err)
		}
		for rows.Next() {
			var src EventSource
			var fields string
			if err := rows.Scan(&src.Type, &src.Filter, &fields); err != nil {
				rows.Close()
				return fmt.Errorf("reading sources of %s: %w", x.ID, err)
			}
			_ = json.Unmarshal([]byte(fields), &src.Fields)
			x.Sources = append(x.Sources, src)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading sources of %s: %w", x.ID, err)
		}
		drows, err := q.QueryContext(ctx, `SELECT destination_id FROM event_subscription_destinations WHERE subscription_id = $1 ORDER BY position`, x.ID)
		if err != nil {
			return fmt.Errorf("reading destinations of %s: %w", x.ID, err)
		}
		for drows.Next() {
			var id string
			if err := drows.Scan(&id); err != nil {
				drows.Close()
				return fmt.Errorf("reading destinations of %s: %w", x.ID, err)
			}
			x.DestinationIDs = append(x.DestinationIDs, id)
		}
		drows.Close()
		if err := drows.Err(); err != nil {
			return fmt.Errorf("reading destinations of %s: %w", x.ID, err)
		}
	}
	return nil
}

// getEventSubscription reads a subscription with its lists through q.
func getEventSubscription(ctx context.Context, q interface {
	queryer
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, accountID, id string) (*EventSubscription, error) {
	x, err := getByID(ctx, q, eventSubscriptionColumns, "event subscription", id, accountID, scanEventSubscription)
	if err != nil {
		return nil, err
	}
	one := []EventSubscription{*x}
	if err := loadSubscriptionLists(ctx, q, one); err != nil {
		return nil, err
	}
	return &one[0], nil
}

// CreateEventSubscription creates a subscription with its sources and
// destinations. Errors: *codes.Error for invalid text, lists, or a
// destination not of the account; ErrNotFound for a missing account.
func (s *Store) CreateEventSubscription(ctx context.Context, actor Actor, accountID string, in EventSubscriptionCreate) (*EventSubscription, error) {
	if err := validateOptional(&in.Description, &in.Metadata); err != nil {
		return nil, err
	}
	if err := checkSubscriptionLists(in.Sources, in.DestinationIDs); err != nil {
		return nil, err
	}
	var x *EventSubscription
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM accounts WHERE id = $1`, accountID, "account"); err != nil {
			return err
		}
		id := ids.New(ids.PrefixEventSub)
		if _, err := t.exec(ctx, `INSERT INTO event_subscriptions (id, account_id, description, metadata, created_at)
			VALUES ($1, $2, $3, $4, $5)`, id, accountID, in.Description, in.Metadata, t.stamp()); err != nil {
			return fmt.Errorf("creating event subscription: %w", err)
		}
		if err := t.setSubscriptionLists(ctx, accountID, id, &in.Sources, &in.DestinationIDs); err != nil {
			return err
		}
		var err error
		if x, err = getEventSubscription(ctx, t.sql, accountID, id); err != nil {
			return err
		}
		t.audit("event_subscription_created.v0", accountID, id, map[string]any{"description": in.Description,
			"sources": sourceTypes(x.Sources), "destination_ids": x.DestinationIDs})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

func sourceTypes(srcs []EventSource) []string {
	out := make([]string, len(srcs))
	for i, s := range srcs {
		out[i] = s.Type
	}
	return out
}

// GetEventSubscription returns a subscription of the account with its
// sources and destinations, or ErrNotFound.
func (s *Store) GetEventSubscription(ctx context.Context, accountID, id string) (*EventSubscription, error) {
	return getEventSubscription(ctx, s.rdb, accountID, id)
}

// ListEventSubscriptions returns one page of the account's subscriptions,
// newest first, and whether more remain.
func (s *Store) ListEventSubscriptions(ctx context.Context, accountID string, page Page) ([]EventSubscription, bool, error) {
	out, more, err := listPage(ctx, s.rdb, eventSubscriptionColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanEventSubscription)
	if err != nil {
		return nil, false, err
	}
	return out, more, loadSubscriptionLists(ctx, s.rdb, out)
}

// UpdateEventSubscription changes a subscription; Sources and
// DestinationIDs, when given, replace the lists. Errors as
// CreateEventSubscription, and ErrNotFound.
func (s *Store) UpdateEventSubscription(ctx context.Context, actor Actor, accountID, id string, in EventSubscriptionUpdate) (*EventSubscription, error) {
	if err := validateOptional(in.Description, in.Metadata); err != nil {
		return nil, err
	}
	var srcs []EventSource
	var dests []string
	if in.Sources != nil {
		srcs = *in.Sources
	}
	if in.DestinationIDs != nil {
		dests = *in.DestinationIDs
	}
	if err := checkSubscriptionLists(srcs, dests); err != nil {
		return nil, err
	}
	var x *EventSubscription
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if x, err = getEventSubscription(ctx, t.sql, accountID, id); err != nil {
			return err
		}
		changes := map[string]any{}
		setField(&x.Description, in.Description, "description", changes)
		setField(&x.Metadata, in.Metadata, "metadata", changes)
		if in.Sources != nil && !slices.EqualFunc(x.Sources, *in.Sources, sourceEqual) {
			changes["sources"] = sourceTypes(*in.Sources)
		} else {
			in.Sources = nil
		}
		if in.DestinationIDs != nil && !slices.Equal(x.DestinationIDs, *in.DestinationIDs) {
			changes["destination_ids"] = nonNil(*in.DestinationIDs)
		} else {
			in.DestinationIDs = nil
		}
		if len(changes) == 0 {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE event_subscriptions SET description = $1, metadata = $2 WHERE id = $3`,
			x.Description, x.Metadata, id); err != nil {
			return fmt.Errorf("updating event subscription %s: %w", id, err)
		}
		if err := t.setSubscriptionLists(ctx, accountID, id, in.Sources, in.DestinationIDs); err != nil {
			return err
		}
		if x, err = getEventSubscription(ctx, t.sql, accountID, id); err != nil {
			return err
		}
		t.audit("event_subscription_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

func sourceEqual(a, b EventSource) bool {
	return a.Type == b.Type && a.Filter == b.Filter && slices.Equal(a.Fields, b.Fields)
}

// DeleteEventSubscription deletes a subscription with its sources. Errors:
// ErrNotFound.
func (s *Store) DeleteEventSubscription(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.deleteOne(ctx, "event_subscriptions", "event subscription", accountID, id); err != nil {
			return err
		}
		t.audit("event_subscription_deleted.v0", accountID, id, map[string]any{})
		return nil
	})
	return err
}

// ---- sources ----

// AddEventSource adds a source to a subscription. Errors: a *ConflictError
// (codes.EventSourceExists) when the type is there already; *codes.Error
// when the subscription has MaxSubscriptionSources; ErrNotFound.
func (s *Store) AddEventSource(ctx context.Context, actor Actor, accountID, subID string, src EventSource) (*EventSubscription, error) {
	var x *EventSubscription
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if x, err = getEventSubscription(ctx, t.sql, accountID, subID); err != nil {
			return err
		}
		if len(x.Sources) >= MaxSubscriptionSources {
			return codes.NewError(codes.EventTypeInvalid, "A subscription may have at most %d sources.", MaxSubscriptionSources)
		}
		if err := t.insertSource(ctx, subID, src, len(x.Sources)); err != nil {
			return err
		}
		x.Sources = append(x.Sources, src)
		t.audit("event_source_created.v0", accountID, subID, map[string]any{"type": src.Type, "filter": src.Filter, "fields": nonNil(src.Fields)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// GetEventSource returns one source of a subscription, or ErrNotFound.
func (s *Store) GetEventSource(ctx context.Context, accountID, subID, typ string) (*EventSource, error) {
	x, err := s.GetEventSubscription(ctx, accountID, subID)
	if err != nil {
		return nil, err
	}
	for _, src := range x.Sources {
		if src.Type == typ {
			return &src, nil
		}
	}
	return nil, fmt.Errorf("event source %s of %s: %w", typ, subID, ErrNotFound)
}

// UpdateEventSource changes the filter or fields of one source of a
// subscription. Errors: ErrNotFound.
func (s *Store) UpdateEventSource(ctx context.Context, actor Actor, accountID, subID, typ string, in EventSourceUpdate) (*EventSource, error) {
	var out *EventSource
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		x, err := getEventSubscription(ctx, t.sql, accountID, subID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(x.Sources, func(s EventSource) bool { return s.Type == typ })
		if i < 0 {
			return fmt.Errorf("event source %s of %s: %w", typ, subID, ErrNotFound)
		}
		src := x.Sources[i]
		out = &src
		changes := map[string]any{}
		setField(&src.Filter, in.Filter, "filter", changes)
		if in.Fields != nil && !slices.Equal(src.Fields, *in.Fields) {
			src.Fields = *in.Fields
			changes["fields"] = nonNil(src.Fields)
		}
		if len(changes) == 0 {
			return nil
		}
		fields, _ := json.Marshal(nonNil(src.Fields))
		if _, err := t.exec(ctx, `UPDATE event_sources SET filter = $1, fields = $2 WHERE subscription_id = $3 AND type = $4`,
			src.Filter, string(fields), subID, typ); err != nil {
			return fmt.Errorf("updating source %s of %s: %w", typ, subID, err)
		}
		changes["type"] = typ
		t.audit("event_source_updated.v0", accountID, subID, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteEventSource removes one source from a subscription. Errors:
// ErrNotFound.
func (s *Store) DeleteEventSource(ctx context.Context, actor Actor, accountID, subID, typ string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		res, err := t.exec(ctx, `DELETE FROM event_sources WHERE type = $1 AND subscription_id IN
			(SELECT id FROM event_subscriptions WHERE id = $2 AND account_id = $3)`, typ, subID, accountID)
		if err != nil {
			return fmt.Errorf("deleting source %s of %s: %w", typ, subID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("event source %s of %s: %w", typ, subID, ErrNotFound)
		}
		t.audit("event_source_deleted.v0", accountID, subID, map[string]any{"type": typ})
		return nil
	})
	return err
}
