// Package regions names Tollgate's regions (codes such as "us" and "eu",
// with their names and the default), the address of a region's edge that
// agents connect to (Address), and how an agent picks the region whose edge
// answers fastest (Fastest: rounds, timeout, switch margin).
//
// Invariants:
//   - The list of regions lives here only; help texts and error messages
//     build theirs with CodeList.
//   - A leaf: no network I/O. Fastest measures through the Measure function
//     its caller passes (the agent's is a TCP connect and a TLS handshake),
//     and every goroutine it starts has ended when it returns.
package regions
