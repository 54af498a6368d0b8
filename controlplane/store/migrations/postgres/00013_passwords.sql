-- Passwords, TOTP, password reset links and pending second-factor
-- sign-ins of users; postgres dialect.
-- Keep in step with ../sqlite/00013_passwords.sql.

-- +goose Up
-- A user's password, as an argon2id PHC string (authn.HashPassword): the
-- parameters, salt and tag; never the password. Bot users have none.
CREATE TABLE user_passwords (
    user_id    TEXT COLLATE "C" PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    hash       TEXT   NOT NULL,
    updated_at BIGINT NOT NULL  -- Unix microseconds
);

-- A user's TOTP authenticator (RFC 6238). The secret is the HMAC key the
-- code is computed with, so it is kept as is (a hash could not verify a
-- code). confirmed is false from enrolment until the first code was
-- given; only a confirmed TOTP is asked at sign-in. last_step is the time
-- step of the last code accepted: a code is accepted once.
CREATE TABLE user_totp (
    user_id    TEXT COLLATE "C" PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret     TEXT    NOT NULL,
    confirmed  BOOLEAN NOT NULL,
    last_step  BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL  -- Unix microseconds
);

-- One-time password reset links an administrator issued. The link holds
-- "<KSUID>_<secret>"; only the secret's SHA-256 is stored. A link works
-- once, until expires_at.
CREATE TABLE password_resets (
    id          TEXT COLLATE "C" PRIMARY KEY, -- pwr_<KSUID>
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account_id  TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    secret_hash TEXT   NOT NULL,
    created_by  TEXT   NOT NULL,  -- the administrator (usr_) who issued it
    created_at  BIGINT NOT NULL,  -- Unix microseconds
    expires_at  BIGINT NOT NULL   -- Unix microseconds
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- Sign-ins whose password was right and that wait for the TOTP code. The
-- browser holds "<KSUID>_<secret>" in a short-lived cookie; only the
-- secret's SHA-256 is stored.
CREATE TABLE signin_challenges (
    id          TEXT COLLATE "C" PRIMARY KEY, -- sic_<KSUID>
    secret_hash TEXT   NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_ip   TEXT   NOT NULL,
    attempts    INTEGER NOT NULL,
    created_at  BIGINT NOT NULL,  -- Unix microseconds
    expires_at  BIGINT NOT NULL   -- Unix microseconds
);
CREATE INDEX signin_challenges_expires ON signin_challenges (expires_at);

-- +goose Down
DROP TABLE signin_challenges;
DROP TABLE password_resets;
DROP TABLE user_totp;
DROP TABLE user_passwords;
