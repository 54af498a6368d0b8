package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The event outbox and per-destination delivery state (docs/events.md).
//
// Every unit of work that records audit events also writes them to
// event_outbox, in the same transaction, when their account has an event
// destination: a change is committed with its events or not at all, so a
// crash between commit and delivery loses nothing. An event's position is
// (revision, idx); writers serialise on the revision row (tx.go), so a
// position seen by a reader is never followed by a new row below it.
//
// Each destination has one event_deliveries row: the position delivered
// through, and a lease. A control-plane process delivers to a destination
// only while it holds the lease (ClaimEventDelivery: UPDATE … WHERE the
// lease is free, expired or its own … RETURNING), and advances the position
// only while it still holds it (FinishEventDelivery), so replicas sharing one
// database never send the same batch twice unless a lease expires mid-send.

// maxOutboxIdx is the idx of a cursor placed after every event of its
// revision.
const maxOutboxIdx = 1 << 30

// OutboxSourceAudit marks outbox rows of control-plane changes. Traffic
// events from edges enter with OutboxSourceTraffic (traffic.go).
const OutboxSourceAudit = "audit"

// OutboxEvent is one row of the outbox. Payload is the event as
// delivered before field selection (events.Event's JSON). A packed traffic
// row (traffic.go) holds Count events in Packed instead, at positions
// Idx … Idx+Count-1, and ID is its first event's; every other row holds
// one event (Count 1, Packed nil).
type OutboxEvent struct {
	Revision  uint64
	Idx       int
	ID        string // ev_...: the event's stable ID
	AccountID string
	Source    string
	Type      string
	Payload   json.RawMessage
	Packed    []byte
	Count     int
	CreatedAt time.Time
}

// outboxPayload is the JSON of an audit event in the outbox: the event
// envelope (docs/events.md#event-format). uri fields of object are paths;
// the deliverer prefixes the API's base URL.
type outboxPayload struct {
	EventID        string          `json:"event_id"`
	EventType      string          `json:"event_type"`
	EventTimestamp string          `json:"event_timestamp"`
	AccountID      string          `json:"account_id"`
	Principal      outboxPrincipal `json:"principal"`
	Object         map[string]any  `json:"object"`
	Details        any             `json:"details"`
}

type outboxPrincipal struct {
	ID           string `json:"id"`
	CredentialID string `json:"credential_id,omitempty"`
}

// writtenEvent is an audit event of a unit of work with its ID.
type writtenEvent struct {
	id string
	ev auditEvent
}

// writeOutbox writes the unit of work's audit events to the outbox, for
// accounts that have an event destination. The object of a created or
// updated event is read in t, after the change.
func (t *tx) writeOutbox(ctx context.Context, evs []writtenEvent) error {
	has := map[string]bool{}
	for i, w := range evs {
		acct := w.ev.accountID
		if acct == "" {
			continue // users and system actions belong to no account's events
		}
		want, seen := has[acct]
		if !seen {
			var one int
			err := t.queryRow(ctx, `SELECT 1 FROM event_destinations WHERE account_id = $1 LIMIT 1`, acct).Scan(&one)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("reading event destinations of %s: %w", acct, err)
			}
			want = err == nil
			has[acct] = want
		}
		if !want {
			continue
		}
		obj, err := t.eventObject(ctx, w.ev)
		if err != nil {
			return fmt.Errorf("reading the object of event %s: %w", w.ev.typ, err)
		}
		p := outboxPayload{EventID: w.id, EventType: w.ev.typ, EventTimestamp: t.now.Format(time.RFC3339Nano),
			AccountID: acct, Principal: outboxPrincipal{ID: t.actor.PrincipalID, CredentialID: t.actor.CredentialID},
			Object: obj, Details: w.ev.payload}
		if p.Details == nil {
			p.Details = map[string]any{}
		}
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encoding event %s: %w", w.ev.typ, err)
		}
		if _, err := t.exec(ctx, `INSERT INTO event_outbox (revision, idx, id, account_id, source, type, payload, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, t.rev, i, w.id, acct, OutboxSourceAudit, w.ev.typ, string(b), t.stamp()); err != nil {
			return fmt.Errorf("writing event %s to the outbox: %w", w.ev.typ, err)
		}
	}
	return nil
}

// ReadOutbox returns the account's rows that hold the first limit events
// after position (afterRev, afterIdx), oldest first: it stops reading
// once the rows' events after the position reach limit, so the last row
// may hold more. The first may be a packed row that starts at or before
// the position (a delivery stopped inside it); the caller skips its
// events up to the position.
func (s *Store) ReadOutbox(ctx context.Context, accountID string, afterRev uint64, afterIdx, limit int) ([]OutboxEvent, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT revision, idx, id, account_id, source, type, payload, created_at, n, packed FROM event_outbox
		WHERE account_id = $1 AND (revision > $2 OR (revision = $2 AND idx > $5 AND idx + n - 1 > $3))
		ORDER BY revision, idx LIMIT $4`, accountID, int64(afterRev), afterIdx, limit, afterIdx-MaxPackedEvents)
	if err != nil {
		return nil, fmt.Errorf("reading the event outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxEvent
	for events := 0; events < limit && rows.Next(); {
		var e OutboxEvent
		var rev, created int64
		var payload string
		if err := rows.Scan(&rev, &e.Idx, &e.ID, &e.AccountID, &e.Source, &e.Type, &payload, &created, &e.Count, &e.Packed); err != nil {
			return nil, fmt.Errorf("reading the event outbox: %w", err)
		}
		e.Revision, e.Payload, e.CreatedAt = uint64(rev), json.RawMessage(payload), fromMicros(created)
		out = append(out, e)
		events += e.Count
		if e.Revision == afterRev && e.Idx <= afterIdx {
			events -= afterIdx - e.Idx + 1
		}
	}
	return out, rows.Err()
}

// afterPosition is the condition on event_outbox rows that hold events
// after position ($2, $3), and pendingCount the number of those events
// in a row (all of its Count, or the part after the position of a row the
// position lies in); both for queries whose $1 is the account.
const (
	afterPosition = `account_id = $1 AND (revision > $2 OR (revision = $2 AND idx + n - 1 > $3))`
	pendingCount  = `CASE WHEN revision = $2 AND idx <= $3 THEN idx + n - 1 - $3 ELSE n END`
)

// EventDelivery is the delivery state of one event destination.
type EventDelivery struct {
	DestinationID  string
	AccountID      string
	CursorRevision uint64 // the position delivered through
	CursorIdx      int
	LeaseOwner     string // "" when no process holds it
	LeaseUntil     time.Time
	NextAttemptAt  time.Time // not before: the backoff after a failure
	Failures       int       // consecutive failed attempts
	Delivered      int64
	Dropped        int64
	LastSuccessAt  time.Time // zero: never
	LastErrorAt    time.Time // zero: never
	LastError      string
	LastEventAt    time.Time // created_at of the newest event delivered
}

const eventDeliveryColumns = `destination_id, account_id, cursor_revision, cursor_idx, lease_owner, lease_until,
	next_attempt_at, failures, delivered, dropped, last_success_at, last_error_at, last_error, last_event_at`

func scanEventDelivery(r scanner) (EventDelivery, error) {
	var d EventDelivery
	var cur, lease, next, success, errAt, lastEv int64
	err := r.Scan(&d.DestinationID, &d.AccountID, &cur, &d.CursorIdx, &d.LeaseOwner, &lease, &next,
		&d.Failures, &d.Delivered, &d.Dropped, &success, &errAt, &d.LastError, &lastEv)
	d.CursorRevision, d.LeaseUntil, d.NextAttemptAt = uint64(cur), fromMicros(lease), optMicros(next)
	d.LastSuccessAt, d.LastErrorAt, d.LastEventAt = optMicros(success), optMicros(errAt), optMicros(lastEv)
	return d, err
}

// EventDeliveries returns the delivery state of every event destination of
// every account, for the deliverer to pick those that are due.
func (s *Store) EventDeliveries(ctx context.Context) ([]EventDelivery, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+eventDeliveryColumns+` FROM event_deliveries ORDER BY destination_id`)
	if err != nil {
		return nil, fmt.Errorf("reading event deliveries: %w", err)
	}
	defer rows.Close()
	var out []EventDelivery
	for rows.Next() {
		d, err := scanEventDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("reading event deliveries: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// GetEventDelivery returns the delivery state of an event destination of
// the account, or ErrNotFound.
func (s *Store) GetEventDelivery(ctx context.Context, accountID, destID string) (*EventDelivery, error) {
	return getRow(s.rdb.QueryRowContext(ctx, `SELECT `+eventDeliveryColumns+` FROM event_deliveries
		WHERE destination_id = $1 AND account_id = $2`, destID, accountID), "event delivery", destID, scanEventDelivery)
}

// PendingEvents returns how many outbox events of the account lie after
// the delivery's position, and the time of the oldest (zero when none).
func (s *Store) PendingEvents(ctx context.Context, d *EventDelivery) (int64, time.Time, error) {
	var n int64
	var oldest sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(SUM(`+pendingCount+`), 0), MIN(created_at) FROM event_outbox
		WHERE `+afterPosition,
		d.AccountID, int64(d.CursorRevision), d.CursorIdx).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("counting pending events: %w", err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, fromMicros(oldest.Int64), nil
}

// ClaimEventDelivery takes the lease of a destination's delivery for owner
// until now+ttl, if it is free, expired or owner's already, and the
// destination is due (its backoff has passed). It returns the state and
// true, or false when another process holds it or it is not due.
func (s *Store) ClaimEventDelivery(ctx context.Context, destID, owner string, ttl time.Duration) (*EventDelivery, bool, error) {
	now := s.now()
	row := s.wdb.QueryRowContext(ctx, `UPDATE event_deliveries SET lease_owner = $2, lease_until = $3
		WHERE destination_id = $1 AND next_attempt_at <= $4 AND (lease_owner = '' OR lease_owner = $2 OR lease_until < $4)
		RETURNING `+eventDeliveryColumns, destID, owner, now.Add(ttl).UnixMicro(), now.UnixMicro())
	d, err := scanEventDelivery(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("claiming delivery of %s: %w", destID, err)
	}
	return &d, true, nil
}

// DeliveryResult is the outcome of one delivery attempt.
type DeliveryResult struct {
	// ThroughRevision and ThroughIdx are the position delivered through
	// (unchanged when nothing was delivered).
	ThroughRevision uint64
	ThroughIdx      int
	Delivered       int64     // events sent
	LastEventAt     time.Time // created_at of the newest event sent; zero: keep
	// Err is the failure, if any; RetryAt is when to try again after it.
	Err     error
	RetryAt time.Time
}

// FinishEventDelivery records an attempt's result and releases the lease,
// if owner still holds it. It returns false when the lease was lost (it
// expired and another process took it): the result is then not recorded.
func (s *Store) FinishEventDelivery(ctx context.Context, destID, owner string, r DeliveryResult) (bool, error) {
	now := s.now().UnixMicro()
	var res sql.Result
	var err error
	if r.Err == nil {
		res, err = s.wdb.ExecContext(ctx, `UPDATE event_deliveries SET cursor_revision = $3, cursor_idx = $4,
			delivered = delivered + $5, failures = 0, next_attempt_at = 0, lease_owner = '', lease_until = 0,
			last_success_at = CASE WHEN $5 > 0 THEN $6 ELSE last_success_at END,
			last_event_at = CASE WHEN $7 > 0 THEN $7 ELSE last_event_at END
			WHERE destination_id = $1 AND lease_owner = $2`,
			destID, owner, int64(r.ThroughRevision), r.ThroughIdx, r.Delivered, now, micros(r.LastEventAt))
	} else {
		msg := r.Err.Error()
		if len(msg) > 1000 {
			msg = msg[:1000]
		}
		res, err = s.wdb.ExecContext(ctx, `UPDATE event_deliveries SET cursor_revision = $3, cursor_idx = $4,
			delivered = delivered + $5, failures = failures + 1, next_attempt_at = $6, lease_owner = '', lease_until = 0,
			last_error_at = $7, last_error = $8,
			last_success_at = CASE WHEN $5 > 0 THEN $7 ELSE last_success_at END,
			last_event_at = CASE WHEN $9 > 0 THEN $9 ELSE last_event_at END
			WHERE destination_id = $1 AND lease_owner = $2`,
			destID, owner, int64(r.ThroughRevision), r.ThroughIdx, r.Delivered, r.RetryAt.UnixMicro(), now, msg, micros(r.LastEventAt))
	}
	if err != nil {
		return false, fmt.Errorf("recording delivery of %s: %w", destID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// PruneOutbox deletes outbox events that every destination of their
// account has delivered, and events of accounts without destinations. An
// event older than keep that a destination has not delivered is dropped
// for it: the destination's position moves past it and its dropped count
// grows, so a destination that stays down does not grow the outbox
// without bound. It returns how many rows it deleted.
func (s *Store) PruneOutbox(ctx context.Context, keep time.Duration) (int64, error) {
	cutoff := s.now().Add(-keep).UnixMicro()
	deliveries, err := s.EventDeliveries(ctx)
	if err != nil {
		return 0, err
	}
	for _, d := range deliveries {
		var n int64
		var maxRev sql.NullInt64
		err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(SUM(`+pendingCount+`), 0), MAX(revision) FROM event_outbox
			WHERE created_at < $4 AND `+afterPosition,
			d.AccountID, int64(d.CursorRevision), d.CursorIdx, cutoff).Scan(&n, &maxRev)
		if err != nil {
			return 0, fmt.Errorf("counting expired events: %w", err)
		}
		if n == 0 {
			continue
		}
		// Move past the expired events, unless a deliverer moved it meanwhile.
		if _, err := s.wdb.ExecContext(ctx, `UPDATE event_deliveries SET cursor_revision = $4, cursor_idx = $5, dropped = dropped + $6
			WHERE destination_id = $1 AND cursor_revision = $2 AND cursor_idx = $3`,
			d.DestinationID, int64(d.CursorRevision), d.CursorIdx, maxRev.Int64, maxOutboxIdx, n); err != nil {
			return 0, fmt.Errorf("dropping expired events of %s: %w", d.DestinationID, err)
		}
	}
	// Traffic rows at or before every destination's position of their
	// account (traffic.go).
	type cursor struct {
		rev uint64
		idx int
	}
	lowest := map[string]cursor{}
	for _, d := range deliveries {
		c, ok := lowest[d.AccountID]
		if !ok || d.CursorRevision < c.rev || (d.CursorRevision == c.rev && d.CursorIdx < c.idx) {
			lowest[d.AccountID] = cursor{d.CursorRevision, d.CursorIdx}
		}
	}
	var pruned int64
	for acct, c := range lowest {
		n, err := s.pruneTraffic(ctx, acct, c.rev, c.idx)
		if err != nil {
			return pruned, err
		}
		pruned += n
	}
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM event_outbox WHERE revision <
		COALESCE((SELECT MIN(d.cursor_revision) FROM event_deliveries d WHERE d.account_id = event_outbox.account_id), $1)`,
		int64(1)<<62)
	if err != nil {
		return 0, fmt.Errorf("pruning the event outbox: %w", err)
	}
	n, _ := res.RowsAffected()
	return pruned + n, nil
}
