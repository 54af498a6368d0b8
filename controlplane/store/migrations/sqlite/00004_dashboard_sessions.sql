-- Dashboard sign-in sessions; sqlite dialect.
-- Keep in step with ../postgres/00004_dashboard_sessions.sql.

-- +goose Up
-- One row per signed-in browser. The cookie holds "<KSUID>_<secret>"; only
-- the secret's hash is stored. A session lives until expires_at or sign-out,
-- and only while the API key it was opened with (api_key_id) is valid: the
-- key's deletion, or its owner's deactivation, ends it.
CREATE TABLE dashboard_sessions (
    id          TEXT   PRIMARY KEY, -- dsn_<KSUID>
    secret_hash TEXT   NOT NULL,
    account_id  TEXT   NOT NULL,
    user_id     TEXT   NOT NULL,
    api_key_id  TEXT   NOT NULL,
    client_ip   TEXT   NOT NULL,    -- the TCP peer that signed in
    created_at  BIGINT NOT NULL,    -- Unix microseconds
    expires_at  BIGINT NOT NULL     -- Unix microseconds
);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);

-- +goose Down
DROP TABLE dashboard_sessions;
