package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the command line with a private environment and returns the
// exit status, stdout and stderr.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["XDG_CONFIG_HOME"]; !ok {
		env["XDG_CONFIG_HOME"] = t.TempDir()
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr, func(k string) string { return env[k] })
	return code, stdout.String(), stderr.String()
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := runCLI(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "tollgate "+version+"\n") || !strings.Contains(out, "\n  go        go1.") {
		t.Fatalf("version: %d %q", code, out)
	}
	code, out, _ = runCLI(t, nil, "--help")
	if code != 0 || !strings.Contains(out, "tollgate http 8080") || !strings.Contains(out, "config add-authtoken") {
		t.Fatalf("help: %d\n%s", code, out)
	}
	if !strings.Contains(out, "--ha-connections") {
		t.Fatalf("help lacks --ha-connections:\n%s", out)
	}
	for _, sub := range []string{"http", "tcp", "tls", "start", "config add-authtoken"} {
		code, out, _ = runCLI(t, nil, append(strings.Fields(sub), "--help")...)
		if code != 0 || !strings.Contains(out, "Examples:") {
			t.Fatalf("%s --help: %d\n%s", sub, code, out)
		}
	}
}

func TestExitCodes(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "missing.pem")
	inUse, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inUse.Close() })
	edge := []string{"--authtoken", "abc_def", "--server-addr", "127.0.0.1:1"}
	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"no args", []string{"http"}, 2, "accepts 1 arg"},
		{"unknown flag", []string{"http", "80", "--bogus"}, 2, "unknown flag"},
		{"unknown command", []string{"bogus"}, 2, "unknown command"},
		{"no authtoken", []string{"http", "8080", "--server-addr", "127.0.0.1:1"}, 1, "[TG_4018]"},
		{"bad upstream", append([]string{"http", "localhost"}, edge...), 2, "has no port"},
		{"bad url", append([]string{"http", "8080", "--url", "tcp://x:1"}, edge...), 2, "[TG_9002]"},
		{"plain http url", append([]string{"http", "8080", "--url", "http://app.example.com"}, edge...), 2, "[TG_9007]"},
		{"inspect is a bool", append([]string{"http", "8080", "--inspect=maybe"}, edge...), 2, "invalid argument"},
		{"bad min tls", append([]string{"http", "8080", "--min-tls", "1.0"}, edge...), 2, "minimum TLS version"},
		{"bad cidr", append([]string{"tcp", "22", "--cidr-allow", "300.0.0.0/8"}, edge...), 2, "CIDR"},
		{"bad basic auth", append([]string{"http", "80", "--basic-auth", "nocolon"}, edge...), 2, "USER:PASSWORD"},
		{"tcp has no min tls", append([]string{"tcp", "22", "--min-tls", "1.2"}, edge...), 2, "unknown flag"},
		{"missing CA", append([]string{"http", "8080", "--root-ca", ca}, edge...), 2, "[TG_9003]"},
		{"bad transport", append([]string{"http", "8080", "--transport", "udp"}, edge...), 2, "auto, quic or tcp"},
		{"no HA connections", append([]string{"http", "8080", "--ha-connections", "0"}, edge...), 2, "use 1 to 8"},
		{"too many HA connections", append([]string{"http", "8080", "--ha-connections", "9"}, edge...), 2, "use 1 to 8"},
		{"bad log level", append([]string{"http", "8080", "--log-level", "loud"}, edge...), 2, "log level"},
		{"web addr in use", append([]string{"http", "8080", "--web-addr", inUse.Addr().String()}, edge...), 2, "[TG_9001]"},
		{"start without file", []string{"start", "--all"}, 2, "No config file"},
		{"start names and all", []string{"start", "web", "--all"}, 2, "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.err) || !strings.HasPrefix(stderr, "tollgate: ") {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.err)
			}
			if strings.Contains(stderr, "abc_def") {
				t.Fatalf("stderr shows the authtoken: %q", stderr)
			}
		})
	}
}

// TestPrecedence uses the root CA path, whose error names the file that
// was chosen: flag beats environment beats config file.
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tollgate.yml")
	err := os.WriteFile(cfgPath, []byte("version: 1\nauthtoken: file_token\nserver_addr: 127.0.0.1:1\nroot_ca: /from/file.pem\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TOLLGATE_CONFIG": cfgPath}
	if _, _, stderr := runCLI(t, env, "http", "8080"); !strings.Contains(stderr, "/from/file.pem") {
		t.Fatalf("file only: %q", stderr)
	}
	env["TOLLGATE_ROOT_CA"] = "/from/env.pem"
	if _, _, stderr := runCLI(t, env, "http", "8080"); !strings.Contains(stderr, "/from/env.pem") {
		t.Fatalf("env over file: %q", stderr)
	}
	if _, _, stderr := runCLI(t, env, "http", "8080", "--root-ca", "/from/flag.pem"); !strings.Contains(stderr, "/from/flag.pem") {
		t.Fatalf("flag over env: %q", stderr)
	}
	// --config beats TOLLGATE_CONFIG.
	other := filepath.Join(dir, "other.yml")
	if err := os.WriteFile(other, []byte("authtoken: x_y\nserver_addr: 127.0.0.1:1\nroot_ca: /from/other.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	delete(env, "TOLLGATE_ROOT_CA")
	if _, _, stderr := runCLI(t, env, "http", "8080", "--config", other); !strings.Contains(stderr, "/from/other.pem") {
		t.Fatalf("--config: %q", stderr)
	}
	// An unknown key in the file is refused with its line.
	if err := os.WriteFile(other, []byte("authtoken: x_y\nservr_addr: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, env, "http", "8080", "--config", other); code != 2 || !strings.Contains(stderr, `line 2: unknown key "servr_addr"`) {
		t.Fatalf("unknown key: %d %q", code, stderr)
	}
}

func TestAddAuthtoken(t *testing.T) {
	xdg := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": xdg}
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caPath, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, env, "config", "add-authtoken", "tok_secret", "--root-ca", caPath); code != 2 || !strings.Contains(stderr, "TG_9003") {
		t.Fatalf("bad CA accepted: %d %q", code, stderr)
	}
	code, out, stderr := runCLI(t, env, "config", "add-authtoken", "tok_secret", "--server-addr", "edge.example.com:4443")
	path := filepath.Join(xdg, "tollgate", "tollgate.yml")
	if code != 0 || !strings.Contains(out, path) || strings.Contains(out+stderr, "tok_secret") {
		t.Fatalf("add-authtoken: %d %q %q", code, out, stderr)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v, %v", st, err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "authtoken: tok_secret") || !strings.Contains(string(data), "server_addr: edge.example.com:4443") {
		t.Fatalf("file:\n%s", data)
	}
	// start reads endpoints from that file; an unknown name is refused.
	if code, _, stderr := runCLI(t, env, "start", "web"); code != 2 || !strings.Contains(stderr, `No endpoint "web"`) {
		t.Fatalf("start web: %d %q", code, stderr)
	}
}
