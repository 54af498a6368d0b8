// Package cpuprofile writes an opt-in CPU profile of a Tollgate binary for
// performance work (see Start).
package cpuprofile

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
)

// Env names an environment variable for performance work, not a
// user setting (it is deliberately absent from --help and the README): when
// set, the process writes a pprof CPU profile to its value from start to
// exit, with "%p" in it replaced by the process ID so that several
// processes can share one setting. Read it with `go tool pprof`.
const Env = "TOLLGATE_CPUPROFILE"

// Start starts the profile that Env asks for and
// returns the function that stops and writes it; that function does
// nothing when no profile was asked for or it could not start.
func Start() (stop func()) {
	path := os.Getenv(Env)
	if path == "" {
		return func() {}
	}
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", Env, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", Env, err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}
