// Package controlplane serves Tollgate's control plane: the REST API
// (reference/platform-behaviour.md §1 shapes, TG_ codes), the snapshot feed
// that edges enforce from, the registry of online agent sessions that edges
// report, and the dev bootstrap. State lives in package store.
//
// Invariants:
//   - Every API mutation is one store unit of work: it bumps the revision and
//     writes an audit event attributed to the API key's owner, or changes
//     nothing (a refused request leaves the revision as it was).
//   - Secrets (API key and authtoken tokens) appear only in the response to
//     the request that created them; they are never stored or logged.
//   - API keys are checked on every request against the store (constant-time
//     hash compare), so deleting or deactivating takes effect at once.
//   - Snapshot(ctx, after) never returns a snapshot at or below after; it
//     sees writes by other processes sharing a PostgreSQL within one poll
//     interval.
//   - NewServer starts nothing; the Server has no goroutines of its own.
//
// # Users, invitations and accounts (RBAC)
//
// A user (usr_) may belong to several accounts, with roles per account
// (reference/platform-behaviour.md §7.2): developer rw|ro, team
// manager|invite|ro, a billing flag and an administrator flag. A bot user
// (bot_) belongs to exactly one account, is not a member (it takes no seat),
// acts as a read/write developer with no other role, and has no login. An
// API key belongs to one account and acts there with its owner's roles;
// switching accounts means using a key of the other account.
//
// Who may do what, on every route (api_auth.go holds the checks; the RBAC
// matrix test, rbac_test.go, pins them for every role and route):
//   - Read: every member reads every resource of the account, except the
//     audit log (administrators and team managers, api_audit.go). Bot users
//     read everything except /users and /invitations (team data) and the
//     audit log. The billing flag gates nothing yet: a billing-only member
//     reads like any read-only member.
//   - Write resources (credentials, API keys, SSH keys, reservations, IP
//     policies, rules and restrictions): developer rw, administrators and
//     bot users. A credential owned by someone else: administrators only.
//   - Bot users, and other users' roles and membership: team managers and
//     administrators. Only administrators grant, revoke or touch the
//     administrator flag or an administrator. Any user may leave an account
//     (DELETE /users/{own id}).
//   - Invitations: administrators and team managers invite with any role
//     but administrator (administrators: any); team invite-only members
//     invite with at most the roles they hold (never team manager or
//     administrator) and revoke their own invitations.
//   - Account settings (PATCH /accounts/{id}): administrators.
//   - An account always keeps an active administrator: a change that would
//     leave none is refused with TG_2619 (409), decided inside the unit of
//     work, which every writer serialises on the revision row.
//   - Removing a user from an account deletes, in the same unit of work,
//     every credential they own there (one audit event each); they never
//     come back, even if the user joins again. A user left in no account is
//     deleted.
//
// Invitations: Tollgate sends no e-mail. POST /invitations returns an
// accept_token once (stored as a SHA-256, compared in constant time); the
// inviter passes it on. POST /invitations/accept {token, name} needs no API
// key: it creates the user when the address is new, adds the membership,
// deletes the invitation and returns a new API key of the user in that
// account, shown once. If the address belongs to an existing user, the
// request must also carry one of that user's API keys, which proves who
// they are (else 401). Invitations expire after store.InvitationTTL.
//
// Accounts: GET /accounts lists the accounts of the caller's user, with
// their roles in each (a bot user sees its own). POST /accounts/{id}/api_keys
// creates an API key of the caller's user in another account they belong
// to: this is how a user switches accounts. Keys that prove identity across
// accounts (for switching and for accepting as an existing user) are the
// user's own: a key an administrator created for them acts only in its
// account, so an administrator of one account cannot reach a member's other
// accounts.
package controlplane
