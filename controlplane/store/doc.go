// Package store is the control plane's persistent state: accounts, principals
// (users and bot users), account memberships with their roles, credentials
// (authtokens cr_, API keys ak_, SSH public keys sshcr_) and the audit log,
// over database/sql with two dialects: SQLite (modernc.org/sqlite, pure Go;
// the default) and PostgreSQL (pgx; when several control-plane processes share
// one database).
//
// Invariants:
//   - Every mutation is one transaction (a unit of work) that bumps the single
//     store revision and writes at least one audit event attributed to the
//     acting principal; a unit of work that records no audit event is rolled
//     back and changes nothing. A crash or error part-way leaves nothing
//     half-written.
//   - Writers are serialised (SQLite: one writer connection with BEGIN
//     IMMEDIATE; PostgreSQL: the revision row lock taken first), so
//     revisions commit in order: once revision N is visible, so is every
//     revision below it.
//   - Secrets are never stored, only authn.HashSecret of them; a token is
//     returned once, by the call that created it.
//   - Deleting a principal deletes its credentials in the same transaction.
//   - The schema is migrated with goose from embedded SQL at Open.
package store
