-- Single sign-on and account domain controls (issue 15); sqlite dialect.
-- Keep in step with ../postgres/00014_sso.sql.

-- +goose Up
-- An identity provider of an account: kind 'saml' or 'oidc', its settings
-- as JSON (store.SAMLSettings or store.OIDCSettings, without secrets), and
-- the OIDC client secret in its own column, which no API answer returns.
CREATE TABLE identity_providers (
    id         TEXT   PRIMARY KEY, -- idp_<KSUID>
    account_id TEXT   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind       TEXT   NOT NULL CHECK (kind IN ('saml', 'oidc')),
    name       TEXT   NOT NULL,
    settings   TEXT   NOT NULL,
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL    -- Unix microseconds
);
CREATE INDEX identity_providers_account ON identity_providers (account_id, id);

-- An account's single sign-on policy; an account without a row is 'mixed'
-- and 'jit'.
CREATE TABLE account_sso_settings (
    account_id   TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    mode         TEXT NOT NULL CHECK (mode IN ('mixed', 'enforced')),
    provisioning TEXT NOT NULL CHECK (provisioning IN ('jit', 'invite_only'))
);

-- SAML assertion IDs already accepted, per identity provider
-- ("<idp_id> <assertion ID>"), kept until the assertion expires, so a
-- replayed assertion is refused by every control plane sharing the store.
CREATE TABLE sso_seen_assertions (
    id         TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL    -- Unix microseconds
);
CREATE INDEX sso_seen_assertions_expires ON sso_seen_assertions (expires_at);

-- An email domain an account claims; verified_at is 0 until the DNS TXT
-- record with token was seen. A domain is verified by one account at most.
CREATE TABLE account_domains (
    id          TEXT   PRIMARY KEY, -- adom_<KSUID>
    account_id  TEXT   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    domain      TEXT   NOT NULL,
    token       TEXT   NOT NULL,
    verified_at BIGINT NOT NULL,   -- Unix microseconds; 0 = not verified
    created_at  BIGINT NOT NULL,
    UNIQUE (account_id, domain)
);
CREATE UNIQUE INDEX account_domains_verified ON account_domains (domain) WHERE verified_at > 0;

-- +goose Down
DROP TABLE account_domains;
DROP TABLE sso_seen_assertions;
DROP TABLE account_sso_settings;
DROP TABLE identity_providers;
