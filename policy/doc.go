// Package policy holds Tollgate's pure access decisions: bind-ACL matching,
// IP policy evaluation and TLS version policy. No network I/O; callers pass
// in what the snapshot and the connection say.
package policy
