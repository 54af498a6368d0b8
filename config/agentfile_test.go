package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestAgentFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "tollgate.yml")
	no := false
	in := &AgentFile{
		Authtoken:     "2abcdef_secret",
		ServerAddr:    "edge.example.com:4443",
		RootCA:        "/etc/tollgate/ca.pem",
		Transport:     "tcp",
		Region:        "eu",
		WebAddr:       "false",
		HAConnections: 3,
		Inspect:       &no,
		MetricsAddr:   "127.0.0.1:9101",
		LogLevel:      "debug",
		LogFormat:     "json",
		// Written as "1m30s" and "2m0s", read back as durations.
		HeartbeatInterval:  90 * time.Second,
		HeartbeatTolerance: 2 * time.Minute,
		Endpoints: map[string]AgentFileEndpoint{
			"web": {Proto: "http", URL: "https://app.example.com", Upstream: "8080", MinTLS: "1.3",
				CIDRAllow: []string{"10.0.0.0/8"}, CIDRDeny: []string{"10.1.0.0/16"}, BasicAuth: []string{"u:p"}, PoolingEnabled: true},
			"db": {Proto: "tcp", Upstream: "5432", Metadata: "primary"},
		},
	}
	if err := SaveAgentFile(path, in); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", st.Mode().Perm())
	}
	if dst, _ := os.Stat(filepath.Dir(path)); dst.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, want 0700", dst.Mode().Perm())
	}
	out, err := LoadAgentFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := *in
	want.Version = AgentFileVersion
	want.dir = filepath.Dir(path)
	if !reflect.DeepEqual(out, &want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, &want)
	}
}

func TestParseAgentFileErrors(t *testing.T) {
	tests := []struct{ name, in, err string }{
		{"unknown top key", "version: 1\nauthtoken: x\nserveraddr: y\n", `line 3: unknown key "serveraddr"`},
		{"unknown endpoint key", "version: 1\nendpoints:\n  web:\n    upstream: 80\n    hostname: a\n", `line 5: unknown key "hostname"`},
		{"bad version", "version: 2\n", "version 2 is not supported"},
		{"bad yaml", "version: [\n", "line"},
		{"two documents", "version: 1\n---\nversion: 1\n", "one YAML document"},
		{"bad endpoint", "endpoints:\n  web:\n    upstream: nope\n", `Endpoint "web"`},
		{"bad transport", "transport: udp\n", "Unknown transport"},
		{"too many HA connections", "ha_connections: 9\n", "ha_connections is 9: use 1 to 8"},
		{"negative HA connections", "ha_connections: -1\n", "ha_connections is -1"},
		{"wrong type", "endpoints: 3\n", "line 1"},
		{"inspect is a bool", "inspect: maybe\n", "line 1"},
		{"bad log level", "log_level: loud\n", "Unknown log level"},
		{"bad log format", "log_format: xml\n", "Unknown log format"},
		{"bad metrics addr", "metrics_addr: 9101\n", "metrics_addr \"9101\" is not HOST:PORT"},
		{"heartbeat without unit", "heartbeat_interval: 10\n", "line 1"},
		{"bad heartbeat", "heartbeat_tolerance: soon\n", "line 1"},
		{"negative heartbeat", "heartbeat_interval: -1s\n", "heartbeat_interval is -1s"},
		{"crt without key", "endpoints:\n  t:\n    proto: tls\n    upstream: 443\n    crt: c.pem\n", "needs both"},
		{"crt on http", "endpoints:\n  w:\n    proto: http\n    upstream: 80\n    crt: c.pem\n    key: k.pem\n", "tls endpoints only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAgentFile([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.err) || !isUsageError(err) {
				t.Fatalf("ParseAgentFile = %v, want usage error containing %q", err, tt.err)
			}
		})
	}
}

func TestParseAgentFileScalars(t *testing.T) {
	f, err := ParseAgentFile([]byte("web_addr: false\nendpoints:\n  web:\n    proto: http\n    upstream: 8080\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.WebAddr != "false" || f.Endpoints["web"].Upstream != "8080" {
		t.Fatalf("web_addr %q upstream %q", f.WebAddr, f.Endpoints["web"].Upstream)
	}
	if f, err := ParseAgentFile(nil); err != nil || f.Version != 0 {
		t.Fatalf("empty file: %+v, %v", f, err)
	}
}

func TestLoadAgentFileMissingAndRelativeCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadAgentFile(filepath.Join(dir, "none.yml")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
	path := filepath.Join(dir, "tollgate.yml")
	if err := os.WriteFile(path, []byte("root_ca: ca.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadAgentFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := *f.Settings().RootCA; got != filepath.Join(dir, "ca.pem") {
		t.Fatalf("root_ca resolved to %q", got)
	}
	if err := os.WriteFile(path, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAgentFile(path); err == nil || !strings.Contains(err.Error(), path+": line 1") {
		t.Fatalf("error %v does not name the file and line", err)
	}
}

func TestUpdateAgentFileKeepsComments(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tollgate.yml")
	orig, err := os.ReadFile(filepath.Join("testdata", "update.in.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateAgentFile(path, map[string]string{"authtoken": "new_token", "server_addr": "edge.example.com:4443", "root_ca": ""}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "update.golden.yml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("UpdateAgentFile result differs from %s (run with -update to accept):\n%s", golden, got)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", st.Mode().Perm())
	}

	// A new file is created with version 1.
	fresh := filepath.Join(dir, "new", "tollgate.yml")
	if err := UpdateAgentFile(fresh, map[string]string{"authtoken": "tok"}); err != nil {
		t.Fatal(err)
	}
	f, err := LoadAgentFile(fresh)
	if err != nil || f.Version != 1 || f.Authtoken != "tok" {
		t.Fatalf("fresh file: %+v, %v", f, err)
	}
	// An invalid file is not rewritten.
	if err := os.WriteFile(path, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := UpdateAgentFile(path, map[string]string{"authtoken": "x"}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("UpdateAgentFile on an invalid file: %v", err)
	}
}

func TestDefaultAgentFilePath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"TOLLGATE_CONFIG": "/x/t.yml", "XDG_CONFIG_HOME": "/xdg", "HOME": "/h"}, "/x/t.yml"},
		{map[string]string{"XDG_CONFIG_HOME": "/xdg", "HOME": "/h"}, "/xdg/tollgate/tollgate.yml"},
		{map[string]string{"HOME": "/h"}, "/h/.config/tollgate/tollgate.yml"},
	}
	for _, tt := range tests {
		got, err := DefaultAgentFilePath(env(tt.env))
		if err != nil || got != tt.want {
			t.Fatalf("DefaultAgentFilePath(%v) = %q, %v; want %q", tt.env, got, err, tt.want)
		}
	}
}

func TestSelectEndpoints(t *testing.T) {
	f := &AgentFile{Endpoints: map[string]AgentFileEndpoint{"b": {Upstream: "2", Proto: "tcp"}, "a": {Upstream: "1", Proto: "http"}}}
	all, err := f.SelectEndpoints(nil, true)
	if err != nil || len(all) != 2 || all[0].Name != "a" || all[1].Name != "b" {
		t.Fatalf("all = %+v, %v", all, err)
	}
	one, err := f.SelectEndpoints([]string{"b"}, false)
	if err != nil || len(one) != 1 || one[0].Upstream != "2" || one[0].Proto != "tcp" {
		t.Fatalf("b = %+v, %v", one, err)
	}
	if _, err := f.SelectEndpoints([]string{"c"}, false); err == nil || !strings.Contains(err.Error(), "defines: a, b") {
		t.Fatalf("unknown name: %v", err)
	}
	if _, err := f.SelectEndpoints(nil, false); err == nil || !strings.Contains(err.Error(), "--all") {
		t.Fatalf("no names: %v", err)
	}
	if _, err := (&AgentFile{}).SelectEndpoints(nil, true); err == nil {
		t.Fatal("--all with no endpoints: no error")
	}
}

func FuzzParseAgentFile(f *testing.F) {
	f.Add([]byte("version: 1\nauthtoken: a\nendpoints:\n  web:\n    upstream: 8080\n"))
	f.Add([]byte("web_addr: false\n"))
	f.Add([]byte("endpoints: {a: {proto: tcp, upstream: '1', cidr_allow: [1.2.3.4]}}"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseAgentFile(data)
		if err != nil {
			if !isUsageError(err) {
				t.Fatalf("ParseAgentFile error is not a usage error: %v", err)
			}
			return
		}
		// Whatever parses can be saved and parsed again to the same value.
		path := filepath.Join(t.TempDir(), "t.yml")
		if err := SaveAgentFile(path, file); err != nil {
			t.Fatalf("SaveAgentFile: %v", err)
		}
		again, err := LoadAgentFile(path)
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
		file.Version, file.dir = AgentFileVersion, again.dir
		emptyListsAreNil(file)
		emptyListsAreNil(again)
		if !reflect.DeepEqual(file, again) && !(len(file.Endpoints) == 0 && len(again.Endpoints) == 0) {
			t.Fatalf("round trip:\n%+v\n%+v", file, again)
		}
	})
}

// emptyListsAreNil makes an empty list and an absent one compare equal: a
// file that says "cidr_allow: []" is saved without the key (omitempty).
func emptyListsAreNil(f *AgentFile) {
	for name, ep := range f.Endpoints {
		for _, l := range []*[]string{&ep.CIDRAllow, &ep.CIDRDeny, &ep.IPPolicyIDs, &ep.BasicAuth} {
			if len(*l) == 0 {
				*l = nil
			}
		}
		f.Endpoints[name] = ep
	}
}

// TestAgentFilePoolingEnabled: pooling_enabled in the file reaches the
// validated endpoint the agent binds with.
func TestAgentFilePoolingEnabled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tollgate.yml")
	if err := os.WriteFile(path, []byte("version: 1\nendpoints:\n  web:\n    proto: http\n    upstream: 8080\n    pooling_enabled: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadAgentFile(path)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := f.SelectEndpoints([]string{"web"}, false)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := eps[0].Validate()
	if err != nil {
		t.Fatal(err)
	}
	if !spec.PoolingEnabled {
		t.Fatal("pooling_enabled did not reach the endpoint")
	}
}

// TestAgentFileAgentKeys: the agent-wide keys that mirror --inspect,
// --metrics-addr, --log-level, --log-format and the heartbeat flags reach
// Settings; absent keys give nil (the flag's default applies).
func TestAgentFileAgentKeys(t *testing.T) {
	f, err := ParseAgentFile([]byte("inspect: false\nmetrics_addr: 127.0.0.1:0\nlog_level: info\nlog_format: json\n" +
		"heartbeat_interval: 5s\nheartbeat_tolerance: 1m\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Settings()
	if s.Inspect == nil || *s.Inspect || *s.MetricsAddr != "127.0.0.1:0" || *s.LogLevel != "info" || *s.LogFormat != "json" ||
		*s.HeartbeatInterval != 5*time.Second || *s.HeartbeatTolerance != time.Minute {
		t.Fatalf("settings %+v", s)
	}
	empty, err := ParseAgentFile([]byte("version: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e := empty.Settings(); e.Inspect != nil || e.MetricsAddr != nil || e.LogLevel != nil || e.HeartbeatInterval != nil {
		t.Fatalf("absent keys: %+v", e)
	}
	// A flag (first layer) beats the file, also when it says false.
	yes := true
	m := MergeAgentSettings(AgentSettings{Inspect: &yes}, AgentSettings{}, s)
	if !*m.Inspect || *m.LogLevel != "info" {
		t.Fatalf("merged %+v", m)
	}
	m = MergeAgentSettings(AgentSettings{}, AgentSettings{}, s)
	if *m.Inspect {
		t.Fatalf("file's inspect: false lost: %+v", m)
	}
}

// TestAgentFileTLSTermination: a tls endpoint's crt and key (the flags
// --crt and --key) are read relative to the config file's directory,
// whatever the working directory.
func TestAgentFileTLSTermination(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSignedPEM(t)
	for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "tollgate.yml")
	yml := "endpoints:\n  pass:\n    proto: tls\n    url: tls://pass.example.com\n    upstream: 8443\n    crt: cert.pem\n    key: key.pem\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadAgentFile(path)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := f.SelectEndpoints([]string{"pass"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if eps[0].TerminateCert != filepath.Join(dir, "cert.pem") || eps[0].TerminateKey != filepath.Join(dir, "key.pem") {
		t.Fatalf("endpoint %+v", eps[0])
	}
	spec, err := eps[0].Validate()
	if err != nil {
		t.Fatal(err)
	}
	if string(spec.TerminateCert) != string(certPEM) || string(spec.TerminateKey) != string(keyPEM) {
		t.Fatal("the certificate and key read are not the files'")
	}
	// Relative to the file, not to the working directory: parsed without
	// a file, the same text cannot find them.
	if _, err := ParseAgentFile([]byte(yml)); err == nil || !strings.Contains(err.Error(), "could not be read") {
		t.Fatalf("parsed outside the file's directory: %v", err)
	}
}

// selfSignedPEM returns a fresh self-signed ECDSA certificate for
// pass.example.com and its key, PEM-encoded.
func selfSignedPEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pass.example.com"},
		DNSNames: []string{"pass.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
