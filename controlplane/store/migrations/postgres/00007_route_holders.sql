-- The region route table: who holds each public name and TCP address;
-- PostgreSQL dialect. Keep in step with ../sqlite/00007_route_holders.sql.
--
-- One row per live bind of a route (an endpoint an agent session bound on
-- an edge), written when the control plane grants a bind (store/routes.go)
-- and deleted on unbind, session end, edge shutdown, or when its edge is
-- gone. A route key (region, route_key) has several rows only for the legs
-- of one agent (same instance_id) or a pool of one account's agents that
-- all asked for pooling. Every writer bumps revision first (store/tx.go),
-- which serialises the check-then-insert of the ownership rule across
-- control-plane processes. The trigger records each changed row in the
-- snapshot change log (migration 00005), so the table reaches every edge
-- through the feed as the snapshot's route_holders collection.

-- +goose Up
CREATE TABLE route_holders (
    id          TEXT    COLLATE "C" PRIMARY KEY, -- the endpoint's ep_ ID
    region      TEXT    NOT NULL,
    proto       TEXT    NOT NULL,                 -- https, tcp, tls
    route_key   TEXT    NOT NULL,                 -- lower-case host, or host:port
    account_id  TEXT    NOT NULL,
    edge_id     TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    instance_id TEXT    NOT NULL,                 -- '' from SDK agents
    pooling     BOOLEAN NOT NULL,
    created_at  BIGINT  NOT NULL                  -- Unix microseconds
);
CREATE INDEX route_holders_route ON route_holders (region, route_key);
CREATE INDEX route_holders_edge ON route_holders (edge_id);

CREATE TRIGGER route_holders_changes AFTER INSERT OR UPDATE OR DELETE ON route_holders
    FOR EACH ROW EXECUTE FUNCTION snapshot_record_change('route_holder', 'id');

-- +goose Down
DROP TRIGGER route_holders_changes ON route_holders;
DROP TABLE route_holders;
