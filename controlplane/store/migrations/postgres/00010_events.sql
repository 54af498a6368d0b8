-- Event subscriptions, destinations, the event outbox and delivery state;
-- PostgreSQL dialect. Keep in step with ../sqlite/00009_events.sql.
-- (docs/events.md)

-- +goose Up
-- An event destination (ed_...): where and how events are sent. target is
-- the API's target object as JSON, secrets included (webhook signing
-- secrets, AWS secret keys); the API never shows those parts.
CREATE TABLE event_destinations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    description TEXT   NOT NULL,
    metadata    TEXT   NOT NULL,
    format      TEXT   NOT NULL,
    target      TEXT   NOT NULL,  -- JSON
    created_at  BIGINT NOT NULL
);
CREATE INDEX event_destinations_account ON event_destinations (account_id, id);

-- An event subscription (esb_...): sources (event types, below) x
-- destinations.
CREATE TABLE event_subscriptions (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    description TEXT   NOT NULL,
    metadata    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX event_subscriptions_account ON event_subscriptions (account_id, id);

-- The destinations of a subscription, in the order given. A destination
-- that a subscription names cannot be deleted (RESTRICT).
CREATE TABLE event_subscription_destinations (
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES event_subscriptions (id) ON DELETE CASCADE,
    destination_id  TEXT COLLATE "C" NOT NULL REFERENCES event_destinations (id) ON DELETE RESTRICT,
    position        INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, destination_id)
);
CREATE INDEX event_subscription_destinations_dest ON event_subscription_destinations (destination_id);

-- A source of a subscription: one event type, with an optional CEL filter
-- and the fields to send ('' = all; else a JSON array of paths).
CREATE TABLE event_sources (
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES event_subscriptions (id) ON DELETE CASCADE,
    type            TEXT    NOT NULL,
    filter          TEXT    NOT NULL,
    fields          TEXT    NOT NULL,  -- JSON array; '[]' = every field
    position        INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, type)
);

-- The outbox: one row per event of an account that has at least one event
-- destination, written in the transaction of the change it records. Its
-- position is (revision, idx): writers serialise on the revision row, so
-- positions grow in commit order and a reader that has seen position P
-- never later finds a new row below P. id is the event's stable ID (the
-- audit event's ev_ ID), for deduplication downstream. source is 'audit'
-- for control-plane changes; traffic events will use another.
CREATE TABLE event_outbox (
    revision   BIGINT  NOT NULL,
    idx        INTEGER NOT NULL,
    id         TEXT COLLATE "C" NOT NULL UNIQUE,
    account_id TEXT COLLATE "C" NOT NULL,
    source     TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    payload    TEXT    NOT NULL,   -- JSON: the event as delivered, before field selection
    created_at BIGINT  NOT NULL,   -- Unix microseconds
    PRIMARY KEY (revision, idx)
);
CREATE INDEX event_outbox_account ON event_outbox (account_id, revision, idx);

-- Delivery state per destination: the outbox position delivered through,
-- the lease of the control-plane process that delivers now (at most one),
-- and the status the API shows.
CREATE TABLE event_deliveries (
    destination_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES event_destinations (id) ON DELETE CASCADE,
    account_id      TEXT COLLATE "C" NOT NULL,
    cursor_revision BIGINT  NOT NULL,
    cursor_idx      INTEGER NOT NULL,
    lease_owner     TEXT    NOT NULL,  -- '' when free
    lease_until     BIGINT  NOT NULL,  -- Unix microseconds
    next_attempt_at BIGINT  NOT NULL,  -- Unix microseconds; backoff after a failure
    failures        INTEGER NOT NULL,  -- consecutive failed attempts
    delivered       BIGINT  NOT NULL,  -- events delivered in all
    dropped         BIGINT  NOT NULL,  -- events pruned from the outbox before delivery
    last_success_at BIGINT  NOT NULL,  -- 0 never
    last_error_at   BIGINT  NOT NULL,  -- 0 never
    last_error      TEXT    NOT NULL,
    last_event_at   BIGINT  NOT NULL   -- created_at of the newest event delivered; 0 none
);

-- +goose Down
DROP TABLE event_deliveries;
DROP TABLE event_outbox;
DROP TABLE event_sources;
DROP TABLE event_subscription_destinations;
DROP TABLE event_subscriptions;
DROP TABLE event_destinations;
