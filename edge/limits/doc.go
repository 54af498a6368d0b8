// Package limits holds the edge's per-client-address state, bounded
// whatever clients send: connection caps per address and in total
// (Conns), and failure throttles for credentials guessed over the network
// (Throttle, over a Table).
//
// Invariants:
//   - A client address is keyed by Key: an IPv4 address (IPv4-mapped IPv6
//     folded to IPv4) by itself, an IPv6 address by its prefix (/64 by
//     default), since one host commonly holds a whole /64.
//   - Conns holds an entry only for an address with a live connection, so
//     its size is at most the total cap; a refused connection adds nothing.
//   - A Table is a ristretto cache of a fixed number of entries: an
//     address spray evicts (TinyLFU keeps the addresses seen often), it
//     never grows the table.
//   - A Throttle counts failures only; a check never consumes, so a valid
//     credential is refused only while its own address (and scope) is
//     throttled, and for at most one refill period after the failures stop.
package limits
