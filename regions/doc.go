// Package regions names Tollgate's regions and picks the one an agent should
// use. No network I/O: latency probing takes a measuring function.
package regions
