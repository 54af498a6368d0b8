package main

import (
	"math"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/codes"
)

// memoryLimit parses --memory-limit ("" or "0" = off; else a byte count
// with an optional KiB, MiB or GiB suffix, e.g. "1536MiB"), sets the Go
// runtime's soft memory limit to it (debug.SetMemoryLimit, as GOMEMLIMIT
// would) and returns it in bytes for edge.Config.MemoryLimit. Off, a
// GOMEMLIMIT from the environment still counts: the guard follows it.
func memoryLimit(flag string) (int64, error) {
	s := strings.TrimSpace(flag)
	if s == "" || s == "0" {
		if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 {
			return cur, nil // GOMEMLIMIT
		}
		return 0, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, codes.NewError(codes.ConfigInvalid, "--memory-limit %q: give a size such as 1536MiB or 2GiB (bytes with KiB, MiB or GiB), or 0 for none.", flag)
	}
	limit := n * mult
	if limit < 64<<20 {
		return 0, codes.NewError(codes.ConfigInvalid, "--memory-limit %q is below 64MiB, too little for an edge.", flag)
	}
	debug.SetMemoryLimit(limit)
	return limit, nil
}
