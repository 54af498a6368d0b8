package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
)

// cpuProfileEnv names an environment variable for performance work, not a
// user setting (it is deliberately absent from --help and the README): when
// set, the process writes a pprof CPU profile to its value from start to
// exit, with "%p" in it replaced by the process ID so that several
// processes can share one setting. Read it with `go tool pprof`.
const cpuProfileEnv = "TOLLGATE_CPUPROFILE"

// startCPUProfile starts the profile that cpuProfileEnv asks for and
// returns the function that stops and writes it; that function does
// nothing when no profile was asked for or it could not start.
func startCPUProfile() (stop func()) {
	path := os.Getenv(cpuProfileEnv)
	if path == "" {
		return func() {}
	}
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cpuProfileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cpuProfileEnv, err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}
