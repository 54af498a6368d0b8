// Package codes holds the stable error codes users see ("TG_<n>") and
// *Error, which carries a code and a plain message apart from the internal
// cause that only logs see.
//
// Invariants: a code never changes meaning once published; a leaf with no
// network I/O that imports nothing of Tollgate's.
package codes
