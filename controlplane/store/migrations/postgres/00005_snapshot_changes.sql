-- The revision-indexed change log of the snapshot's objects; PostgreSQL dialect.
-- Keep in step with ../sqlite/00005_snapshot_changes.sql.
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
    object_id TEXT   COLLATE "C" NOT NULL,
    PRIMARY KEY (revision, kind, object_id)
);

CREATE TABLE snapshot_changes_floor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT  NOT NULL
);
-- The log starts now: an edge behind the current revision gets a whole snapshot.
INSERT INTO snapshot_changes_floor (id, revision) SELECT 1, value FROM revision WHERE id = 1;

-- TG_ARGV[0] is the kind, TG_ARGV[1] the column that holds the object's ID.
-- +goose StatementBegin
CREATE FUNCTION snapshot_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rev BIGINT;
BEGIN
    SELECT value INTO rev FROM revision WHERE id = 1;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO snapshot_changes (revision, kind, object_id)
            VALUES (rev, TG_ARGV[0], to_jsonb(OLD) ->> TG_ARGV[1]) ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO snapshot_changes (revision, kind, object_id)
            VALUES (rev, TG_ARGV[0], to_jsonb(NEW) ->> TG_ARGV[1]) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER accounts_changes AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('account', 'id');
CREATE TRIGGER principals_changes AFTER INSERT OR UPDATE OR DELETE ON principals
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('principal', 'id');
CREATE TRIGGER bot_users_changes AFTER INSERT OR UPDATE OR DELETE ON bot_users
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('principal', 'id');
CREATE TRIGGER memberships_changes AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('principal', 'user_id');
CREATE TRIGGER authtokens_changes AFTER INSERT OR UPDATE OR DELETE ON authtokens
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('authtoken', 'id');
CREATE TRIGGER ssh_credentials_changes AFTER INSERT OR UPDATE OR DELETE ON ssh_credentials
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('ssh_credential', 'id');
CREATE TRIGGER reserved_domains_changes AFTER INSERT OR UPDATE OR DELETE ON reserved_domains
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('reserved_domain', 'id');
CREATE TRIGGER reserved_addrs_changes AFTER INSERT OR UPDATE OR DELETE ON reserved_addrs
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('reserved_addr', 'id');
CREATE TRIGGER ip_policies_changes AFTER INSERT OR UPDATE OR DELETE ON ip_policies
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('ip_policy', 'id');
CREATE TRIGGER ip_policy_rules_changes AFTER INSERT OR UPDATE OR DELETE ON ip_policy_rules
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('ip_policy', 'ip_policy_id');
CREATE TRIGGER ip_restrictions_changes AFTER INSERT OR UPDATE OR DELETE ON ip_restrictions
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('ip_restriction', 'id');
CREATE TRIGGER ip_restriction_policies_changes AFTER INSERT OR UPDATE OR DELETE ON ip_restriction_policies
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('ip_restriction', 'ip_restriction_id');

-- +goose Down
DROP TRIGGER accounts_changes ON accounts;
DROP TRIGGER principals_changes ON principals;
DROP TRIGGER bot_users_changes ON bot_users;
DROP TRIGGER memberships_changes ON memberships;
DROP TRIGGER authtokens_changes ON authtokens;
DROP TRIGGER ssh_credentials_changes ON ssh_credentials;
DROP TRIGGER reserved_domains_changes ON reserved_domains;
DROP TRIGGER reserved_addrs_changes ON reserved_addrs;
DROP TRIGGER ip_policies_changes ON ip_policies;
DROP TRIGGER ip_policy_rules_changes ON ip_policy_rules;
DROP TRIGGER ip_restrictions_changes ON ip_restrictions;
DROP TRIGGER ip_restriction_policies_changes ON ip_restriction_policies;
DROP FUNCTION snapshot_record_change();
DROP TABLE snapshot_changes_floor;
DROP TABLE snapshot_changes;
