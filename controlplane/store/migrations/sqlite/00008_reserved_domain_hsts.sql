-- The HSTS setting of a reserved domain (issue 12 §5); sqlite dialect.
-- Keep in step with ../postgres/00008_reserved_domain_hsts.sql.

-- +goose Up
-- The Strict-Transport-Security value edges set on the domain's HTTPS
-- responses, in canonical form ("max-age=N[; includeSubDomains][; preload]",
-- policy.HSTS.String), or '' for none. docs/tls.md#hsts.
ALTER TABLE reserved_domains ADD COLUMN hsts TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE reserved_domains DROP COLUMN hsts;
