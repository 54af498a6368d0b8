-- The revision-indexed change log of the snapshot's objects; SQLite dialect.
-- Keep in step with ../postgres/00005_snapshot_changes.sql.
--
-- Every mutation bumps revision.value first in its transaction (store/tx.go);
-- the triggers below then record, in that same transaction, which snapshot
-- object each changed row belongs to: (revision, kind, object_id). A row of
-- a child table (bot_users, memberships, ip_policy_rules,
-- ip_restriction_policies) records its parent object. Cascaded deletes fire
-- the triggers too, so nothing a mutation changes is missed, and a rolled
-- back transaction records nothing. The control plane computes a delta from
-- revision A to B by reading the rows of the objects logged in (A, B].
-- snapshot_changes_floor is the oldest revision the log still covers: rows at
-- or below it are pruned, and an edge that holds an older revision gets a
-- whole snapshot.

-- +goose Up
CREATE TABLE snapshot_changes (
    revision  BIGINT NOT NULL,
    kind      TEXT   NOT NULL, -- account, principal, authtoken, ssh_credential, reserved_domain, reserved_addr, ip_policy, ip_restriction
    object_id TEXT   NOT NULL,
    PRIMARY KEY (revision, kind, object_id)
);

CREATE TABLE snapshot_changes_floor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT  NOT NULL
);
-- The log starts now: an edge behind the current revision gets a whole snapshot.
INSERT INTO snapshot_changes_floor (id, revision) SELECT 1, value FROM revision WHERE id = 1;

-- +goose StatementBegin
CREATE TRIGGER accounts_changes_insert AFTER INSERT ON accounts FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'account', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER accounts_changes_update AFTER UPDATE ON accounts FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'account', OLD.id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'account', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER accounts_changes_delete AFTER DELETE ON accounts FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'account', OLD.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER principals_changes_insert AFTER INSERT ON principals FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER principals_changes_update AFTER UPDATE ON principals FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', OLD.id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER principals_changes_delete AFTER DELETE ON principals FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', OLD.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER bot_users_changes_insert AFTER INSERT ON bot_users FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER bot_users_changes_update AFTER UPDATE ON bot_users FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', OLD.id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER bot_users_changes_delete AFTER DELETE ON bot_users FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', OLD.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER memberships_changes_insert AFTER INSERT ON memberships FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', NEW.user_id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER memberships_changes_update AFTER UPDATE ON memberships FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', OLD.user_id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', NEW.user_id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER memberships_changes_delete AFTER DELETE ON memberships FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'principal', OLD.user_id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER authtokens_changes_insert AFTER INSERT ON authtokens FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'authtoken', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER authtokens_changes_update AFTER UPDATE ON authtokens FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'authtoken', OLD.id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'authtoken', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER authtokens_changes_delete AFTER DELETE ON authtokens FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'authtoken', OLD.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ssh_credentials_changes_insert AFTER INSERT ON ssh_credentials FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ssh_credential', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ssh_credentials_changes_update AFTER UPDATE ON ssh_credentials FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ssh_credential', OLD.id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ssh_credential', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ssh_credentials_changes_delete AFTER DELETE ON ssh_credentials FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ssh_credential', OLD.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER reserved_domains_changes_insert AFTER INSERT ON reserved_domains FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'reserved_domain', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER reserved_domains_changes_update AFTER UPDATE ON reserved_domains FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'reserved_domain', OLD.id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'reserved_domain', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER reserved_domains_changes_delete AFTER DELETE ON reserved_domains FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'reserved_domain', OLD.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER reserved_addrs_changes_insert AFTER INSERT ON reserved_addrs FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'reserved_addr', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER reserved_addrs_changes_update AFTER UPDATE ON reserved_addrs FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'reserved_addr', OLD.id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'reserved_addr', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER reserved_addrs_changes_delete AFTER DELETE ON reserved_addrs FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'reserved_addr', OLD.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_policies_changes_insert AFTER INSERT ON ip_policies FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_policy', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_policies_changes_update AFTER UPDATE ON ip_policies FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_policy', OLD.id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_policy', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_policies_changes_delete AFTER DELETE ON ip_policies FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_policy', OLD.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_policy_rules_changes_insert AFTER INSERT ON ip_policy_rules FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_policy', NEW.ip_policy_id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_policy_rules_changes_update AFTER UPDATE ON ip_policy_rules FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_policy', OLD.ip_policy_id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_policy', NEW.ip_policy_id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_policy_rules_changes_delete AFTER DELETE ON ip_policy_rules FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_policy', OLD.ip_policy_id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_restrictions_changes_insert AFTER INSERT ON ip_restrictions FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_restriction', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_restrictions_changes_update AFTER UPDATE ON ip_restrictions FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_restriction', OLD.id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_restriction', NEW.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_restrictions_changes_delete AFTER DELETE ON ip_restrictions FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_restriction', OLD.id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_restriction_policies_changes_insert AFTER INSERT ON ip_restriction_policies FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_restriction', NEW.ip_restriction_id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_restriction_policies_changes_update AFTER UPDATE ON ip_restriction_policies FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_restriction', OLD.ip_restriction_id FROM revision WHERE id = 1;
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_restriction', NEW.ip_restriction_id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER ip_restriction_policies_changes_delete AFTER DELETE ON ip_restriction_policies FOR EACH ROW BEGIN
    INSERT OR IGNORE INTO snapshot_changes (revision, kind, object_id)
        SELECT value, 'ip_restriction', OLD.ip_restriction_id FROM revision WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER accounts_changes_insert;
DROP TRIGGER accounts_changes_update;
DROP TRIGGER accounts_changes_delete;
DROP TRIGGER principals_changes_insert;
DROP TRIGGER principals_changes_update;
DROP TRIGGER principals_changes_delete;
DROP TRIGGER bot_users_changes_insert;
DROP TRIGGER bot_users_changes_update;
DROP TRIGGER bot_users_changes_delete;
DROP TRIGGER memberships_changes_insert;
DROP TRIGGER memberships_changes_update;
DROP TRIGGER memberships_changes_delete;
DROP TRIGGER authtokens_changes_insert;
DROP TRIGGER authtokens_changes_update;
DROP TRIGGER authtokens_changes_delete;
DROP TRIGGER ssh_credentials_changes_insert;
DROP TRIGGER ssh_credentials_changes_update;
DROP TRIGGER ssh_credentials_changes_delete;
DROP TRIGGER reserved_domains_changes_insert;
DROP TRIGGER reserved_domains_changes_update;
DROP TRIGGER reserved_domains_changes_delete;
DROP TRIGGER reserved_addrs_changes_insert;
DROP TRIGGER reserved_addrs_changes_update;
DROP TRIGGER reserved_addrs_changes_delete;
DROP TRIGGER ip_policies_changes_insert;
DROP TRIGGER ip_policies_changes_update;
DROP TRIGGER ip_policies_changes_delete;
DROP TRIGGER ip_policy_rules_changes_insert;
DROP TRIGGER ip_policy_rules_changes_update;
DROP TRIGGER ip_policy_rules_changes_delete;
DROP TRIGGER ip_restrictions_changes_insert;
DROP TRIGGER ip_restrictions_changes_update;
DROP TRIGGER ip_restrictions_changes_delete;
DROP TRIGGER ip_restriction_policies_changes_insert;
DROP TRIGGER ip_restriction_policies_changes_update;
DROP TRIGGER ip_restriction_policies_changes_delete;
DROP TABLE snapshot_changes_floor;
DROP TABLE snapshot_changes;
