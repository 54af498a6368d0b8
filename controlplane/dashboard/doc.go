// Package dashboard serves the control plane's web UI, on its own listener.
// A user signs in with their e-mail address and password (argon2id), then a
// TOTP code when they enrolled an authenticator; one of their own API keys
// signs in too, as the operator's fallback. Bot users cannot sign in
// (docs/api-compatibility.md#principals). A user may belong to several
// accounts and switches between them; each session is in one account.
// docs/dashboard-sign-in.md holds the rules. The RBAC rules, the rate
// limits on failed authentications and the IP restriction decision are the
// controlplane package's, shared with the REST API.
//
// Invariants:
//   - The account's `dashboard` IP restriction is applied to the browser's
//     TCP peer address at sign-in and on every page after it.
//   - Pages are rendered on the server (html/template, templates and
//     style sheet embedded from web/, no script); no page is cached, framed
//     or sent with a referrer.
//   - Every form post carries a token derived from the session secret, and
//     posts from another origin are refused.
//   - The session cookie (CookieName) is HttpOnly and SameSite=Strict; the
//     store keeps only the hash of its secret. Secrets a page shows (a new
//     token, an invitation link) are shown once.
//   - A form action changes what its REST API operation changes, through
//     the same store and controlplane functions (Caller's checks,
//     Core.UpdateMemberRoles, Core.RemoveMember, Core.CreateSSHCredential,
//     Core.RunSessionCommand, Reservations): a rule exists once. A refused
//     action changes nothing and shows the page again with the error; a
//     successful one redirects (303) to the page with a banner.
//   - Every sign-in and account switch opens a new session and ends the one
//     the browser held; sign-ins, sign-outs and failures are audited.
//   - A throttled password sign-in is refused before any hash is computed;
//     the right password from an address without failures is never
//     refused (controlplane.Core.AdmitSignIn).
//   - Whether an account admits a sign-in method is decided in one place,
//     Server.signInMethodAdmitted.
//   - New starts nothing; the Server has no goroutines of its own.
package dashboard
