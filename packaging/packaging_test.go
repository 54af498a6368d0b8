package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var units = []string{"tollgate-control.service", "tollgate-edge.service", "tollgate-agent.service"}

// stageUnits copies the units into a temporary directory with ExecStart's
// /usr/local/bin/ pointing at stand-in executables there, so that
// systemd-analyze, which checks that the command exists, can verify them
// on a machine where Tollgate is not installed.
func stageUnits(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tollgated", "tollgate"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join("systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("ExecStart=/usr/local/bin/")) {
			t.Fatalf("%s: ExecStart does not run /usr/local/bin/...", u)
		}
		b = bytes.ReplaceAll(b, []byte("=/usr/local/bin/"), []byte("="+bin+"/"))
		if err := os.WriteFile(filepath.Join(dir, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSystemdVerify: systemd-analyze verify accepts every unit without a
// word (it reports unknown keys and misplaced settings only as warnings,
// so any output fails the test), and rates each unit's exposure "OK".
func TestSystemdVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed: scripts/test installs it (Debian package systemd)")
	}
	dir := stageUnits(t)
	for _, u := range units {
		cmd := exec.Command(sa, "verify", "--man=no", "./"+u)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
		// Exposure from 0 (locked down) to 10; 2.5 and below is "OK".
		cmd = exec.Command(sa, "security", "--offline=yes", "--threshold=25", "./"+u)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze security %s: %v\n%s", u, err, lastLine(out))
		}
	}
}

// TestSystemdVerifyFails: the check can fail: a unit with a misspelt key
// is reported.
func TestSystemdVerifyFails(t *testing.T) {
	dir := stageUnits(t)
	p := filepath.Join(dir, "tollgate-edge.service")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte("ProtectSystem=strict"), []byte("ProtectSytem=strict"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", "./tollgate-edge.service")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	if !bytes.Contains(out, []byte("ProtectSytem")) {
		t.Fatalf("systemd-analyze verify did not report a misspelt key: %q", out)
	}
}

// TestUnitHardening: the settings the units promise (docs/install.md).
func TestUnitHardening(t *testing.T) {
	must := []string{
		"User=", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"RestrictAddressFamilies=", "SystemCallFilter=@system-service", "StateDirectory=", "UMask=0077",
	}
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join("systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, m := range must {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m)).MatchString(s) {
				t.Errorf("%s lacks %s", u, m)
			}
		}
		if regexp.MustCompile(`(?m)^User=root`).MatchString(s) {
			t.Errorf("%s runs as root", u)
		}
		// Capabilities: CAP_NET_BIND_SERVICE for the edge's ports below
		// 1024, nothing else anywhere.
		for _, key := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
			m := regexp.MustCompile(`(?m)^` + key + `=(.*)$`).FindStringSubmatch(s)
			want := ""
			if u == "tollgate-edge.service" {
				want = "CAP_NET_BIND_SERVICE"
			}
			if m == nil || strings.TrimSpace(m[1]) != want {
				t.Errorf("%s: %s=%v, want %q", u, key, m, want)
			}
		}
	}
}

// TestDockerfile checks the Dockerfile's shape, since no container engine
// runs here to build it: two stages, a static build, a non-root user, a
// health check on /healthz; and that compose.yaml is YAML whose tollgated
// services read the configuration file config check validates
// (cmd/tollgated's TestConfigCheck).
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(s, -1)); n != 2 {
		t.Errorf("Dockerfile has %d stages, want 2 (build, runtime)", n)
	}
	for _, want := range []string{"CGO_ENABLED=0", "HEALTHCHECK", "/healthz", "--metrics-addr\", \"0.0.0.0:9100"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)`).FindStringSubmatch(s)
	if user == nil || strings.HasPrefix(user[1], "0") || strings.HasPrefix(user[1], "root") {
		t.Errorf("Dockerfile USER %v: want a non-root user", user)
	}

	var compose struct {
		Services map[string]struct {
			Image   string   `yaml:"image"`
			Command []string `yaml:"command"`
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	cb, err := os.ReadFile(filepath.Join("docker", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(cb, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if _, ok := compose.Services["db"]; !ok {
		t.Error("compose.yaml has no db (PostgreSQL) service")
	}
	for _, name := range []string{"control", "edge"} {
		svc := compose.Services[name]
		if svc.Image != "tollgate" || len(svc.Command) != 3 || svc.Command[0] != name || svc.Command[1] != "--config" {
			t.Errorf("compose.yaml service %s: %+v", name, svc)
		}
		if len(svc.Volumes) == 0 || !strings.HasPrefix(svc.Volumes[0], "./tollgated.yaml:"+svc.Command[2]) {
			t.Errorf("compose.yaml service %s does not mount ./tollgated.yaml at %v", name, svc.Command)
		}
	}
}

// TestCrossCompile builds both binaries for a platform other than this
// one (Windows, which has no umask and no Unix sockets options), as `make
// release` does for every platform.
func TestCrossCompile(t *testing.T) {
	goos, goarch := "windows", "amd64"
	if runtime.GOOS == goos {
		goos = "linux"
	}
	out := t.TempDir()
	cmd := exec.Command("go", "build", "-o", out+string(os.PathSeparator), "./cmd/tollgated", "./cmd/tollgate")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=%s GOARCH=%s go build: %v\n%s", goos, goarch, err, b)
	}
	ext := ""
	if goos == "windows" {
		ext = ".exe"
	}
	for _, name := range []string{"tollgated", "tollgate"} {
		if fi, err := os.Stat(filepath.Join(out, name+ext)); err != nil || fi.Size() == 0 {
			t.Errorf("%s%s: %v", name, ext, err)
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
