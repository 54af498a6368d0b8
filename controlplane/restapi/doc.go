// Package restapi serves the control plane's REST API at the root of the
// API listener: the resource paths, JSON fields, status codes, pagination
// (before_id, limit, next_page_uri) and error body that the hosted
// platform's API clients expect (docs/api-compatibility.md), with
// Tollgate's TG_ codes. Each resource group has its own handler type
// (botUserAPI, apiKeyAPI, credentialAPI, sshCredentialAPI, reservationAPI,
// ipPolicyAPI, userAPI, sessionAPI, auditAPI) over the Server's request
// helpers (io.go, crud.go). Authentication, rate limits, the `api` IP
// restriction, the error body and the RBAC rules (who may do what on every
// route) are the controlplane package's: see its rbac.go.
//
// Invariants:
//   - Every mutation is one store unit of work: it bumps the revision and
//     writes an audit event attributed to the API key's owner, or changes
//     nothing (a refused request leaves the revision as it was).
//   - Secrets (API key, authtoken and invitation accept tokens) appear only
//     in the response to the request that created them; they are never
//     stored or logged.
//   - A request body is one JSON object of known fields (TG_214 otherwise);
//     a path ID of another kind is TG_2601.
//   - New starts nothing; the Server has no goroutines of its own.
//
// # Invitations and accounts
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
package restapi
