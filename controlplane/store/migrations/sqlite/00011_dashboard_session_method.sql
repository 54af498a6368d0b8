-- How each dashboard session was signed in; sqlite dialect.
-- Keep in step with ../postgres/00011_dashboard_session_method.sql.

-- +goose Up
-- method is how the browser signed in: 'api_key' (a pasted API key, named
-- by api_key_id), 'password' (email and password), 'saml' or 'oidc' (an
-- identity provider). Only an 'api_key' session has an api_key_id; the
-- others have '' and act with the user's roles in the session's account.
ALTER TABLE dashboard_sessions ADD COLUMN method TEXT NOT NULL DEFAULT 'api_key';

-- +goose Down
ALTER TABLE dashboard_sessions DROP COLUMN method;
