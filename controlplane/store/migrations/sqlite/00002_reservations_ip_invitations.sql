-- Reservations, IP policies and restrictions, invitations; SQLite dialect.
-- Keep in step with ../postgres/00002_reservations_ip_invitations.sql.

-- +goose Up
CREATE TABLE reserved_domains (
    id               TEXT   PRIMARY KEY,
    account_id       TEXT   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain           TEXT   NOT NULL UNIQUE,
    region           TEXT   NOT NULL,
    description      TEXT   NOT NULL,
    metadata         TEXT   NOT NULL,
    cert_authority   TEXT   NOT NULL, -- '' = no certificate management policy
    private_key_type TEXT   NOT NULL, -- 'rsa', 'ecdsa', or '' with no policy
    min_tls_version  TEXT   NOT NULL, -- '1.0'..'1.3', or '' for the edge default
    created_at       BIGINT NOT NULL
);
CREATE INDEX reserved_domains_account ON reserved_domains (account_id, id);

CREATE TABLE reserved_addrs (
    id          TEXT   PRIMARY KEY,
    account_id  TEXT   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    addr        TEXT   NOT NULL UNIQUE,
    region      TEXT   NOT NULL,
    description TEXT   NOT NULL,
    metadata    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX reserved_addrs_account ON reserved_addrs (account_id, id);

CREATE TABLE ip_policies (
    id          TEXT   PRIMARY KEY,
    account_id  TEXT   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    description TEXT   NOT NULL,
    metadata    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX ip_policies_account ON ip_policies (account_id, id);

CREATE TABLE ip_policy_rules (
    id           TEXT   PRIMARY KEY,
    account_id   TEXT   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    ip_policy_id TEXT   NOT NULL REFERENCES ip_policies (id) ON DELETE CASCADE,
    cidr         TEXT   NOT NULL,
    action       TEXT   NOT NULL CHECK (action IN ('allow', 'deny')),
    description  TEXT   NOT NULL,
    metadata     TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (ip_policy_id, cidr)
);
CREATE INDEX ip_policy_rules_account ON ip_policy_rules (account_id, id);

CREATE TABLE ip_restrictions (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    type        TEXT    NOT NULL CHECK (type IN ('dashboard', 'api', 'agent', 'endpoints')),
    enforced    BOOLEAN NOT NULL,
    description TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX ip_restrictions_account ON ip_restrictions (account_id, id);

-- A policy named by a restriction cannot be deleted (no cascade).
CREATE TABLE ip_restriction_policies (
    ip_restriction_id TEXT    NOT NULL REFERENCES ip_restrictions (id) ON DELETE CASCADE,
    ip_policy_id      TEXT    NOT NULL REFERENCES ip_policies (id),
    position          INTEGER NOT NULL,
    PRIMARY KEY (ip_restriction_id, ip_policy_id)
);
CREATE INDEX ip_restriction_policies_policy ON ip_restriction_policies (ip_policy_id);

CREATE TABLE invitations (
    id         TEXT    PRIMARY KEY,
    account_id TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email      TEXT    NOT NULL,
    developer  TEXT    NOT NULL CHECK (developer IN ('rw', 'ro')),
    team       TEXT    NOT NULL CHECK (team IN ('manager', 'invite', 'ro')),
    billing    BOOLEAN NOT NULL,
    admin      BOOLEAN NOT NULL,
    secret_hash TEXT   NOT NULL, -- SHA-256 of the accept token's secret
    invited_by TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    UNIQUE (account_id, email)
);
CREATE INDEX invitations_account ON invitations (account_id, id);

-- +goose Down
DROP TABLE invitations;
DROP TABLE ip_restriction_policies;
DROP TABLE ip_restrictions;
DROP TABLE ip_policy_rules;
DROP TABLE ip_policies;
DROP TABLE reserved_addrs;
DROP TABLE reserved_domains;
