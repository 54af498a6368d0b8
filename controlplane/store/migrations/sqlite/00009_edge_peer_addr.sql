-- The edge-to-edge address each edge reports; sqlite dialect.
-- Keep in step with ../postgres/00009_edge_peer_addr.sql.

-- +goose Up
-- peer_addr is where sibling edges of the region forward public
-- connections to this edge (tollgated edge --peer-addr, as advertised);
-- '' when it has no such listener. Edges learn it from the live-edge list
-- (snapshot.EdgeInfo.PeerAddr).
ALTER TABLE edge_reports ADD COLUMN peer_addr TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE edge_reports DROP COLUMN peer_addr;
