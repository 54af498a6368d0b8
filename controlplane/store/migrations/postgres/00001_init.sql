-- Tollgate control-plane schema, PostgreSQL dialect. Keep in step with
-- ../sqlite/00001_init.sql: the two differ only in ID collation
-- (COLLATE "C" here, so IDs sort bytewise as KSUIDs do, as in SQLite).
-- Timestamps are Unix microseconds (UTC); ACLs are rules joined by "\n".

-- +goose Up
CREATE TABLE revision (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT  NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TABLE accounts (
    id         TEXT COLLATE "C"    PRIMARY KEY,
    name       TEXT    NOT NULL,
    active     BOOLEAN NOT NULL,
    created_at BIGINT  NOT NULL
);

CREATE TABLE principals (
    id         TEXT COLLATE "C"    PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('user', 'bot')),
    name       TEXT    NOT NULL,
    active     BOOLEAN NOT NULL,
    created_at BIGINT  NOT NULL
);

CREATE TABLE users (
    id    TEXT COLLATE "C" PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
    email TEXT NOT NULL UNIQUE
);

CREATE TABLE bot_users (
    id         TEXT COLLATE "C" PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
    account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE INDEX bot_users_account ON bot_users (account_id, id);

CREATE TABLE memberships (
    account_id TEXT COLLATE "C"    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id    TEXT COLLATE "C"    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    developer  TEXT    NOT NULL CHECK (developer IN ('rw', 'ro')),
    team       TEXT    NOT NULL CHECK (team IN ('manager', 'invite', 'ro')),
    billing    BOOLEAN NOT NULL,
    admin      BOOLEAN NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (account_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE authtokens (
    id          TEXT COLLATE "C"   PRIMARY KEY,
    account_id  TEXT COLLATE "C"   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    owner_id    TEXT COLLATE "C"   NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    secret_hash TEXT   NOT NULL,
    description TEXT   NOT NULL,
    metadata    TEXT   NOT NULL,
    acl         TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX authtokens_account ON authtokens (account_id, id);
CREATE INDEX authtokens_owner ON authtokens (owner_id);

CREATE TABLE api_keys (
    id          TEXT COLLATE "C"   PRIMARY KEY,
    account_id  TEXT COLLATE "C"   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    owner_id    TEXT COLLATE "C"   NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    secret_hash TEXT   NOT NULL,
    description TEXT   NOT NULL,
    metadata    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX api_keys_account ON api_keys (account_id, id);
CREATE INDEX api_keys_owner ON api_keys (owner_id);

CREATE TABLE ssh_credentials (
    id          TEXT COLLATE "C"   PRIMARY KEY,
    account_id  TEXT COLLATE "C"   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    owner_id    TEXT COLLATE "C"   NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    fingerprint TEXT   NOT NULL UNIQUE,
    public_key  TEXT   NOT NULL,
    description TEXT   NOT NULL,
    metadata    TEXT   NOT NULL,
    acl         TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX ssh_credentials_account ON ssh_credentials (account_id, id);
CREATE INDEX ssh_credentials_owner ON ssh_credentials (owner_id);

CREATE TABLE audit_events (
    id                  TEXT COLLATE "C"   PRIMARY KEY,
    revision            BIGINT NOT NULL,
    account_id          TEXT COLLATE "C"   NOT NULL,
    type                TEXT   NOT NULL,
    actor_id            TEXT COLLATE "C"   NOT NULL,
    actor_credential_id TEXT COLLATE "C"   NOT NULL,
    object_id           TEXT COLLATE "C"   NOT NULL,
    payload             TEXT   NOT NULL,
    created_at          BIGINT NOT NULL
);
CREATE INDEX audit_events_account ON audit_events (account_id, id);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE ssh_credentials;
DROP TABLE api_keys;
DROP TABLE authtokens;
DROP TABLE memberships;
DROP TABLE bot_users;
DROP TABLE users;
DROP TABLE principals;
DROP TABLE accounts;
DROP TABLE revision;
