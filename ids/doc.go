// Package ids makes and checks Tollgate's object IDs: "<prefix>_<KSUID>",
// where the prefix names the kind of object (acct, usr, bot, cr, ak, ...)
// and the KSUID makes IDs sort by creation time.
//
// Invariants: a leaf; no network I/O; imports nothing of Tollgate's.
package ids
