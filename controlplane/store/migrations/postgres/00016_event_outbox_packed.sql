-- Packed traffic rows in the event outbox; PostgreSQL dialect. Keep in step
-- with ../sqlite/00016_event_outbox_packed.sql. (docs/events.md#traffic-events)

-- +goose Up
-- n: how many events the row holds. An audit row, and a traffic row
-- written before this migration, holds one, as JSON in payload. A packed
-- traffic row holds n events of one account and type from one edge batch
-- in packed (controlplane/events packTraffic's encoding; payload is '')
-- and takes the n positions idx … idx+n-1 of its revision.
ALTER TABLE event_outbox ADD COLUMN n INTEGER NOT NULL DEFAULT 1;
ALTER TABLE event_outbox ADD COLUMN packed BYTEA;

-- +goose Down
ALTER TABLE event_outbox DROP COLUMN packed;
ALTER TABLE event_outbox DROP COLUMN n;
