package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/ids"
)

// Actor is who performs a mutation; every audit event names it.
type Actor struct {
	// AccountID is the account the actor acts in ("" for system actions).
	AccountID string
	// PrincipalID is the usr_ or bot_ ID, or "system" for the control
	// plane's own actions (bootstrap, migrations of data).
	PrincipalID string
	// CredentialID is the credential that authenticated the request (an ak_
	// ID), "" when there was none.
	CredentialID string
}

// SystemActor is the actor of the control plane's own mutations.
var SystemActor = Actor{PrincipalID: "system"}

// auditEvent is one pending audit row of a unit of work.
type auditEvent struct {
	typ       string
	accountID string
	objectID  string
	payload   any
}

// tx is a unit of work: one write transaction that has already bumped the
// store revision. Queries go through its methods.
type tx struct {
	sql    *sql.Tx
	rev    uint64
	now    time.Time
	actor  Actor
	events []auditEvent
	// operational is set by a unit of work that changed operational state
	// the edges must see (the route table, routes.go) but that is no
	// operator's mutation: it commits without an audit event.
	operational bool
}

// audit records an audit event, written with the unit of work. Types are
// "<object>_<verb>.v0", for example "api_key_created.v0".
func (t *tx) audit(typ, accountID, objectID string, payload any) {
	t.events = append(t.events, auditEvent{typ: typ, accountID: accountID, objectID: objectID, payload: payload})
}

func (t *tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.sql.ExecContext(ctx, q, args...)
}

func (t *tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.sql.QueryRowContext(ctx, q, args...)
}

func (t *tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.sql.QueryContext(ctx, q, args...)
}

// strings runs q and returns its single text column.
func (t *tx) strings(ctx context.Context, q string, args ...any) ([]string, error) {
	return queryStrings(ctx, t.sql, q, args...) // scim.go
}

// stamp returns the unit of work's time as stored: Unix microseconds.
func (t *tx) stamp() int64 { return t.now.UnixMicro() }

// update runs fn as one unit of work. It begins a write transaction, bumps
// the revision first (which serialises writers), runs fn, writes the audit
// events fn recorded and commits. When fn fails, or records no audit event
// and no operational change (nothing changed), the transaction rolls back and the revision is
// unchanged. It returns the revision the unit of work committed, or 0.
func (s *Store) update(ctx context.Context, actor Actor, fn func(ctx context.Context, t *tx) error) (uint64, error) {
	if actor.PrincipalID == "" {
		return 0, errors.New("store: a mutation needs an actor")
	}
	sqlTx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("beginning transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = sqlTx.Rollback()
		}
	}()
	t := &tx{sql: sqlTx, now: s.now().UTC(), actor: actor}
	var rev int64
	if err := sqlTx.QueryRowContext(ctx, `UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("bumping store revision: %w", err)
	}
	t.rev = uint64(rev)
	// From here on, the triggers of migration 00005 record every snapshot
	// object this transaction changes in snapshot_changes at revision rev.
	if err := fn(ctx, t); err != nil {
		return 0, err
	}
	if len(t.events) == 0 && !t.operational {
		return 0, nil // nothing changed: roll back the revision bump
	}
	if err := s.pruneChanges(ctx, t); err != nil {
		return 0, err
	}
	written := make([]writtenEvent, len(t.events))
	for i, ev := range t.events {
		payload, err := json.Marshal(ev.payload)
		if err != nil {
			return 0, fmt.Errorf("encoding audit event %s: %w", ev.typ, err)
		}
		written[i] = writtenEvent{id: ids.New(ids.PrefixAuditEvent), ev: ev}
		_, err = t.exec(ctx, `INSERT INTO audit_events
			(id, revision, account_id, type, actor_id, actor_credential_id, object_id, payload, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			written[i].id, rev, ev.accountID, ev.typ,
			actor.PrincipalID, actor.CredentialID, ev.objectID, string(payload), t.stamp())
		if err != nil {
			return 0, fmt.Errorf("writing audit event %s: %w", ev.typ, err)
		}
	}
	// The same events enter the event outbox in this transaction
	// (eventoutbox.go), with the audit event's ID as their stable ID.
	if err := t.writeOutbox(ctx, written); err != nil {
		return 0, err
	}
	if err := sqlTx.Commit(); err != nil {
		return 0, fmt.Errorf("committing revision %d: %w", rev, err)
	}
	committed = true
	s.notify()
	return t.rev, nil
}

// view runs fn in one read-only transaction that sees a single consistent
// state of the database (REPEATABLE READ on PostgreSQL; an SQLite read
// transaction in WAL mode).
func (s *Store) view(ctx context.Context, fn func(ctx context.Context, q *sql.Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	q, err := s.rdb.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("beginning read transaction: %w", err)
	}
	defer func() { _ = q.Rollback() }()
	return fn(ctx, q)
}
