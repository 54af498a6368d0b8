package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/tollgate/tollgate/config"
)

// TestAgentConfigFromFile: the agent-wide keys of tollgate.yml (inspect,
// metrics_addr, log_level, log_format, heartbeat_interval,
// heartbeat_tolerance) reach the agent's configuration, and a flag given
// on the command line beats the file.
func TestAgentConfigFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tollgate.yml")
	yml := "version: 1\ninspect: false\nmetrics_addr: 127.0.0.1:0\nlog_level: debug\nlog_format: json\n" +
		"heartbeat_interval: 3s\nheartbeat_tolerance: 7s\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := config.LoadAgentFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		inspectOff             bool
		metrics, level, format string
		interval, tolerance    time.Duration
	}
	for _, tc := range []struct {
		name  string
		file  *config.AgentFile
		flags []string
		want  want
	}{
		{"file", file, nil, want{true, "127.0.0.1:0", "debug", "json", 3 * time.Second, 7 * time.Second}},
		{"flags beat the file", file, []string{"--inspect=true", "--metrics-addr", "127.0.0.1:9", "--log-level", "error",
			"--log-format", "console", "--heartbeat-interval", "4s"},
			want{false, "127.0.0.1:9", "error", "console", 4 * time.Second, 7 * time.Second}},
		{"flag turns inspection off", &config.AgentFile{}, []string{"--inspect=false"}, want{inspectOff: true}},
		{"no file, no flags", &config.AgentFile{}, nil, want{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
			root := newRootCmd(e)
			if err := root.PersistentFlags().Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			cfg, s, err := agentConfig(e, tc.file, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := want{cfg.Inspect.Off, deref(s.MetricsAddr), deref(s.LogLevel), deref(s.LogFormat),
				cfg.HeartbeatInterval, cfg.HeartbeatTolerance}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if _, err := newLogger(io.Discard, got.level, got.format); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestEveryAgentFlagHasAFileKey: each flag of the agent (the global ones,
// `tollgate api`'s and those of `http`, `tcp` and `tls`) has a key of the
// same name, dashes as underscores, in tollgate.yml (config.AgentFile at
// the top level, config.AgentFileEndpoint for an endpoint's), but for the
// flags that choose the file or name no setting. A new flag without a key
// fails here.
func TestEveryAgentFlagHasAFileKey(t *testing.T) {
	// Flags whose key is spelt otherwise, or that have none on purpose.
	renamed := map[string]string{"ip-policy-id": "ip_policy_ids"}
	noKey := map[string]bool{"config": true, "help": true}
	keys := func(v any) map[string]bool {
		out := map[string]bool{}
		typ := reflect.TypeOf(v)
		for i := 0; i < typ.NumField(); i++ {
			if tag := typ.Field(i).Tag.Get("yaml"); tag != "" {
				out[strings.Split(tag, ",")[0]] = true
			}
		}
		return out
	}
	top, endpoint := keys(config.AgentFile{}), keys(config.AgentFileEndpoint{})
	root := newRootCmd(&env{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }})
	check := func(fs *pflag.FlagSet, in map[string]bool, where string) {
		fs.VisitAll(func(f *pflag.Flag) {
			if noKey[f.Name] {
				return
			}
			key, ok := renamed[f.Name]
			if !ok {
				key = strings.ReplaceAll(f.Name, "-", "_")
			}
			if !in[key] {
				t.Errorf("flag --%s of %s has no key %q in tollgate.yml", f.Name, where, key)
			}
		})
	}
	check(root.PersistentFlags(), top, "tollgate")
	for _, sub := range []string{"api", "http", "tcp", "tls"} {
		cmd, _, err := root.Find([]string{sub})
		if err != nil || cmd.Name() != sub {
			t.Fatalf("no command %s: %v", sub, err)
		}
		if sub == "api" {
			check(cmd.PersistentFlags(), top, "tollgate api")
			continue
		}
		check(cmd.LocalNonPersistentFlags(), endpoint, "tollgate "+sub)
	}
}
