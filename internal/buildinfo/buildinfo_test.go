package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromVCS(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/tollgate/tollgate", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "windows"}, {Key: "GOARCH", Value: "arm64"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-07T05:40:11Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	got := From("tollgated", "1.2.0", bi).String()
	want := `tollgated 1.2.0
  module    github.com/tollgate/tollgate (devel)
  go        go1.26.8 windows/arm64
  revision  0123456789abcdef0123456789abcdef01234567 (modified)
  time      2026-12-07T05:40:11Z
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestFromNoVCS(t *testing.T) {
	got := From("tollgate", "0.1.0", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/tollgate/tollgate"}}).String()
	if !strings.Contains(got, "revision  unknown") || !strings.HasPrefix(got, "tollgate 0.1.0\n") {
		t.Errorf("got %q", got)
	}
	if got := From("tollgate", "0.1.0", nil).String(); !strings.Contains(got, "no build information") {
		t.Errorf("nil build info: %q", got)
	}
}
