-- Certificate storage shared by edges (certmagic.Storage), its locks, and the
-- certificate management status of reserved domains; SQLite dialect.
-- Keep in step with ../postgres/00003_certificates.sql.

-- +goose Up
-- One certmagic storage key ("certificates/<ca>/<name>/<name>.crt", ...) per row.
-- Keys compare bytewise (BINARY), so a prefix scan is a range scan.
CREATE TABLE certmagic_data (
    key      TEXT   PRIMARY KEY,
    value    BLOB   NOT NULL,
    modified BIGINT NOT NULL -- Unix microseconds
);

-- Issuance locks: a holder refreshes expires_at while it holds the lock; a
-- lock past expires_at belongs to a dead holder and may be taken over.
CREATE TABLE certmagic_locks (
    name       TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL -- Unix microseconds
);

-- What edges last reported about a name's certificate: the reserved_domains
-- API shows it as certificate_management_status. Keyed by the domain (lower
-- case, punycode), not by the reservation, so a re-reservation keeps it.
CREATE TABLE certificate_status (
    domain           TEXT   PRIMARY KEY,
    not_after        BIGINT NOT NULL, -- Unix microseconds; 0 = no certificate yet
    renews_at        BIGINT NOT NULL, -- Unix microseconds; 0 = unknown
    issuer           TEXT   NOT NULL,
    job_error_code   TEXT   NOT NULL, -- '' = no failing provisioning job
    job_msg          TEXT   NOT NULL,
    job_started_at   BIGINT NOT NULL,
    job_retries_at   BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    region           TEXT   NOT NULL  -- region of the edge that reported last
);

-- +goose Down
DROP TABLE certificate_status;
DROP TABLE certmagic_locks;
DROP TABLE certmagic_data;
