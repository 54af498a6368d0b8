-- SCIM provisioning (docs/scim.md); SQLite dialect. Keep in step with
-- ../postgres/00012_scim.sql: the two differ only in ID collation.
--
-- memberships.active: a user deactivated in one account (SCIM active:
-- false) keeps their membership and credentials there, but may not sign in
-- to it and their credentials there stop working; other accounts are not
-- touched. memberships.scim_external_id is the identity provider's ID of
-- the user (SCIM externalId), per account.
--
-- scim_groups are the SCIM Groups of an account, each with the roles it
-- grants (developer, team: '' grants nothing of that dimension);
-- scim_group_members their members, who must be members of the account
-- (removing the membership removes them from its groups).

-- +goose Up
ALTER TABLE memberships ADD COLUMN active BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE memberships ADD COLUMN scim_external_id TEXT NOT NULL DEFAULT '';

CREATE TABLE scim_groups (
    id           TEXT    PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    display_name TEXT    NOT NULL,
    external_id  TEXT    NOT NULL,
    developer    TEXT    NOT NULL CHECK (developer IN ('', 'rw', 'ro')),
    team         TEXT    NOT NULL CHECK (team IN ('', 'manager', 'invite', 'ro')),
    billing      BOOLEAN NOT NULL,
    admin        BOOLEAN NOT NULL,
    created_at   BIGINT  NOT NULL,
    UNIQUE (account_id, display_name)
);
CREATE INDEX scim_groups_account ON scim_groups (account_id, id);

CREATE TABLE scim_group_members (
    group_id   TEXT NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id),
    FOREIGN KEY (account_id, user_id) REFERENCES memberships (account_id, user_id) ON DELETE CASCADE
);
CREATE INDEX scim_group_members_user ON scim_group_members (account_id, user_id);

-- +goose Down
DROP TABLE scim_group_members;
DROP TABLE scim_groups;
ALTER TABLE memberships DROP COLUMN scim_external_id;
ALTER TABLE memberships DROP COLUMN active;
