// Package buildinfo describes the running binary for `tollgated version`
// and `tollgate version`: the release version stamped at link time, the
// module and Go toolchain it was built with, and the version-control
// revision, commit time and modified flag that `go build` records
// (runtime/debug.ReadBuildInfo; absent under `go run` of a file list and
// in test binaries, and when built outside a VCS checkout or with
// -buildvcs=false).
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is what a binary knows about its own build. Empty strings are
// unknown.
type Info struct {
	Program  string // "tollgated" or "tollgate"
	Version  string // the release version, -ldflags "-X main.version=..."
	Module   string // main module path, e.g. github.com/tollgate/tollgate
	ModVer   string // main module version: "(devel)" for a local build, vX.Y.Z from `go install ...@vX.Y.Z`
	Go       string // toolchain, e.g. go1.26.8
	OS, Arch string // GOOS and GOARCH of the binary
	Revision string // vcs.revision: the commit hash
	Time     string // vcs.time: the commit time, RFC 3339
	Modified bool   // vcs.modified: the work tree had uncommitted changes
	HasVCS   bool   // whether the build recorded VCS information at all
}

// Read returns the running binary's Info, with program and version as
// given (the version stamped into package main).
func Read(program, version string) Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return From(program, version, bi)
}

// From builds Info from bi (nil when the binary has no build information);
// OS and Arch are the running binary's.
func From(program, version string, bi *debug.BuildInfo) Info {
	in := Info{Program: program, Version: version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi == nil {
		return in
	}
	in.Module, in.ModVer = bi.Main.Path, bi.Main.Version
	if bi.GoVersion != "" {
		in.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision, in.HasVCS = s.Value, true
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		case "GOOS":
			in.OS = s.Value
		case "GOARCH":
			in.Arch = s.Value
		}
	}
	return in
}

// String renders Info as the version command prints it: a first line
// "PROGRAM VERSION", then one indented "name  value" line each for the
// module, Go, the platform and the revision, e.g.
//
//	tollgated 1.2.0
//	  module    github.com/tollgate/tollgate (devel)
//	  go        go1.26.8 linux/amd64
//	  revision  7769e7a0c3... (modified)
//	  time      2026-12-07T05:40:11Z
func (in Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", in.Program, in.Version)
	mod := in.Module
	if mod == "" {
		mod = "unknown (no build information)"
	} else if in.ModVer != "" {
		mod += " " + in.ModVer
	}
	fmt.Fprintf(&b, "  module    %s\n", mod)
	fmt.Fprintf(&b, "  go        %s %s/%s\n", in.Go, in.OS, in.Arch)
	if !in.HasVCS {
		b.WriteString("  revision  unknown (built without version control information)\n")
		return b.String()
	}
	rev := in.Revision
	if in.Modified {
		rev += " (modified)"
	}
	fmt.Fprintf(&b, "  revision  %s\n", rev)
	if in.Time != "" {
		fmt.Fprintf(&b, "  time      %s\n", in.Time)
	}
	return b.String()
}
