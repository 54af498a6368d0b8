// Package dashboard serves the control plane's web UI, on its own listener.
// A user signs in with one of their own API keys — the token sign-in of the
// Kubernetes dashboard: no second kind of password to leak, and deleting the
// key ends every dashboard session opened with it. Bot users cannot sign in
// (docs/api-compatibility.md#principals). The RBAC rules, the rate limit on
// failed authentications and the IP restriction decision are the
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
//   - New starts nothing; the Server has no goroutines of its own.
package dashboard
