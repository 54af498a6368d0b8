-- What edges report and the commands queued for them; sqlite dialect.
-- Keep in step with ../postgres/00006_edge_state.sql.

-- +goose Up
-- One row per edge that reported (PUT /edge/v1/sessions): its region, the
-- address agents dial, its online agent sessions (a JSON array of
-- snapshot.AgentSession) and when it last reported. Any control-plane
-- process answers from here, so replicas on one database agree. An edge
-- silent for three report intervals counts as gone; its row is deleted.
CREATE TABLE edge_reports (
    edge_id     TEXT   PRIMARY KEY,
    region      TEXT   NOT NULL,
    agent_addr  TEXT   NOT NULL,
    sessions    TEXT   NOT NULL,    -- JSON array
    last_seen   BIGINT NOT NULL,    -- Unix microseconds
    polled_at   BIGINT NOT NULL     -- Unix microseconds of its last command poll; 0 never
);

-- One row per stop/restart command for an edge's agent session. Whichever
-- process the edge polls claims it (claimed_at, once); the edge's result
-- is written to result_code/result_msg and done_at, where the process that
-- queued the command (and waits for it) reads it.
CREATE TABLE edge_commands (
    id          TEXT   PRIMARY KEY, -- cmd_<hex>
    edge_id     TEXT   NOT NULL,
    verb        TEXT   NOT NULL,
    session_id  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,    -- Unix microseconds
    claimed_at  BIGINT NOT NULL,    -- Unix microseconds; 0 while queued
    done_at     BIGINT NOT NULL,    -- Unix microseconds; 0 until the edge answered
    result_code TEXT   NOT NULL,    -- the TG_ code of a failure; '' for success
    result_msg  TEXT   NOT NULL
);
CREATE INDEX edge_commands_edge ON edge_commands (edge_id, claimed_at);

-- +goose Down
DROP TABLE edge_commands;
DROP TABLE edge_reports;
