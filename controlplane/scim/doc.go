// Package scim serves SCIM 2.0 provisioning (RFC 7643, RFC 7644) at
// /scim/v2/ on the API listener (docs/scim.md): an account's identity
// provider (Microsoft Entra ID, Okta, any RFC 7644 client) creates,
// changes, deactivates and deletes the account's users, and manages
// groups whose members get the roles each group grants.
//
// Invariants:
//   - Every request authenticates with an API key of an administrator of
//     the account and obeys the account's api IP restriction and rate
//     limits (controlplane.Core.Admit); a SCIM request acts in the key's
//     account only.
//   - The handlers are thin: parsing and the RFC 7644 PATCH rules live in
//     patch.go and filter.go (filters and paths parsed with
//     github.com/scim2/filter-parser), every change is one unit of work of
//     the store (controlplane/store/scim*.go), audited there.
//   - Errors are RFC 7644 §3.12 error responses whose detail starts with
//     a stable TG_ code (codes.SCIM*); a refused request changes nothing.
package scim
