-- Traffic events dropped before they reached the outbox, per account and
-- event type; PostgreSQL dialect. Keep in step with ../sqlite/00015_event_traffic_drops.sql.
-- (docs/events.md#traffic-events)

-- +goose Up
-- edge_dropped: records edges dropped because their buffer was full
-- (reported in their next batch); outbox_dropped: events the control
-- plane refused because the account was at --events-traffic-cap.
CREATE TABLE event_traffic_drops (
    account_id     TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    event_type     TEXT COLLATE "C" NOT NULL,
    edge_dropped   BIGINT NOT NULL DEFAULT 0,
    outbox_dropped BIGINT NOT NULL DEFAULT 0,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (account_id, event_type)
);

-- +goose Down
DROP TABLE event_traffic_drops;
