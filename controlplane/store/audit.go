package store

import "context"

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
func (s *Store) ListAuditEvents(ctx context.Context, accountID string, page Page) ([]AuditEvent, bool, error) {
	return listPage(ctx, s.rdb, auditColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanAuditEvent)
}
