package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

const auditColumns = `SELECT id, revision, account_id, type, actor_id, actor_credential_id, object_id, payload, created_at
	FROM audit_events`

func scanAuditEvent(r scanner) (AuditEvent, error) {
	var e AuditEvent
	var rev, created int64
	var payload string
	err := r.Scan(&e.ID, &rev, &e.AccountID, &e.Type, &e.ActorID, &e.ActorCredentialID, &e.ObjectID, &payload, &created)
	e.Revision, e.Payload, e.CreatedAt = uint64(rev), []byte(payload), fromMicros(created)
	return e, err
}

// ListAuditEvents returns one page of the account's audit events, newest
// first, and whether more remain. Pass accountID "" for events that belong to
// no account (users, system actions).
//
// Order is by revision, then ID, both descending: revisions follow commit
// order exactly, whereas IDs (KSUIDs) order only to the second. page.BeforeID
// names the last event of the previous page; an ID that is not an event of
// the account yields an empty page.
func (s *Store) ListAuditEvents(ctx context.Context, accountID string, page Page) ([]AuditEvent, bool, error) {
	return s.ListAuditEventsWhere(ctx, accountID, AuditFilter{}, page)
}

// AuditFilter narrows ListAuditEventsWhere; zero fields match every event.
type AuditFilter struct {
	// PrincipalID keeps the events of one principal (usr_, bot_, or
	// "system" for the control plane's own actions).
	PrincipalID string
	// ObjectPrefix keeps the events about one kind of object, by its ID
	// prefix (ids.PrefixIPPolicy: "ipp"); it must be letters only.
	ObjectPrefix string
	// Since and Until keep the events created at or after Since and
	// before Until (microsecond precision).
	Since, Until time.Time
}

// ListAuditEventsWhere is ListAuditEvents with the events f keeps only;
// paging (page.BeforeID) works the same within the filtered list.
func (s *Store) ListAuditEventsWhere(ctx context.Context, accountID string, f AuditFilter, page Page) ([]AuditEvent, bool, error) {
	q := auditColumns + ` WHERE account_id = $1`
	args := []any{accountID}
	if page.BeforeID != "" {
		args = append(args, page.BeforeID)
		// The cursor's revision, read in the same statement.
		cur := `(SELECT c.revision FROM audit_events c WHERE c.id = $2 AND c.account_id = $1)`
		q += ` AND (revision < ` + cur + ` OR (revision = ` + cur + ` AND id < $2))`
	}
	arg := func(v any) string {
		args = append(args, v)
		return `$` + strconv.Itoa(len(args))
	}
	if f.PrincipalID != "" {
		q += ` AND actor_id = ` + arg(f.PrincipalID)
	}
	if f.ObjectPrefix != "" {
		for _, r := range f.ObjectPrefix {
			if r < 'a' || r > 'z' {
				return nil, false, fmt.Errorf("audit filter: object prefix %q is not lower-case letters", f.ObjectPrefix)
			}
		}
		// A range on the ID rather than LIKE, whose "_" is a wildcard:
		// "ipp_" <= id < "ipp`" ("`" follows "_").
		q += ` AND object_id >= ` + arg(f.ObjectPrefix+"_") + ` AND object_id < ` + arg(f.ObjectPrefix+"`")
	}
	if !f.Since.IsZero() {
		q += ` AND created_at >= ` + arg(f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		q += ` AND created_at < ` + arg(f.Until.UnixMicro())
	}
	n := page.limit()
	args = append(args, n+1)
	q += ` ORDER BY revision DESC, id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("listing audit events: %w", err)
	}
	defer rows.Close()
	out := make([]AuditEvent, 0, min(n, 16))
	more := false
	for rows.Next() {
		if len(out) == n {
			more = true
			break
		}
		e, err := scanAuditEvent(rows)
		if err != nil {
			return nil, false, fmt.Errorf("listing audit events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("listing audit events: %w", err)
	}
	return out, more, nil
}

// GetAuditEvent returns one audit event of the account, or ErrNotFound.
func (s *Store) GetAuditEvent(ctx context.Context, accountID, id string) (*AuditEvent, error) {
	return getByID(ctx, s.rdb, auditColumns, "audit event", id, accountID, scanAuditEvent)
}

// RecordEvent writes an audit event for an action that changes no stored
// object, such as an operator stopping an agent session: typ is
// "<object>_<verb>.v0", payload is encoded as JSON. Like every unit of work
// it takes a new revision, so the log keeps commit order.
func (s *Store) RecordEvent(ctx context.Context, actor Actor, accountID, typ, objectID string, payload any) error {
	if typ == "" {
		return errors.New("store: an audit event needs a type")
	}
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		t.audit(typ, accountID, objectID, payload)
		return nil
	})
	return err
}
