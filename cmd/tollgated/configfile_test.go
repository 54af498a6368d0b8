package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tollgate/tollgate/codes"
)

// errRan is what a test's RunE returns: the command got past its flags'
// checks.
var errRan = errors.New("the command ran")

// runFlags runs a daemon command's flag handling (the configuration file
// and the check) with args and returns its flags and the error; the
// command itself never starts.
func runFlags(t *testing.T, name string, args ...string) (*pflag.FlagSet, error) {
	t.Helper()
	for _, d := range daemonCommands() {
		if d.name != name {
			continue
		}
		cmd, _ := d.build()
		cmd.RunE = func(*cobra.Command, []string) error { return errRan }
		cmd.SetArgs(args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		return cmd.Flags(), err
	}
	t.Fatalf("no command %s", name)
	return nil, nil
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantCode(t *testing.T, err error, code codes.Code, parts ...string) {
	t.Helper()
	var ce *codes.Error
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("error %v: want code %s", err, code)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestConfigFileSetsFlagsAndCommandLineWins(t *testing.T) {
	path := writeFile(t, "tollgated.yaml", `
control:
  api_addr: 127.0.0.1:5000
  store: /var/lib/tollgate/tollgate.db
  rate_burst: 7
  shutdown_timeout: 3s
  trusted_proxies: [10.0.0.0/8, 192.168.0.0/16]
  tcp_addr_pool:
    - us=tcp.example.com:20000-20099
  dashboard_secure_cookie: true
edge:
  region: eu
`)
	fs, err := runFlags(t, "control", "--config", path, "--api-addr", "127.0.0.1:6000")
	if !errors.Is(err, errRan) {
		t.Fatalf("control: %v", err)
	}
	for flag, want := range map[string]string{
		"api-addr":                "127.0.0.1:6000", // the command line wins
		"store":                   "/var/lib/tollgate/tollgate.db",
		"rate-burst":              "7",
		"shutdown-timeout":        "3s",
		"trusted-proxies":         "[10.0.0.0/8,192.168.0.0/16]",
		"tcp-addr-pool":           "[us=tcp.example.com:20000-20099]",
		"dashboard-secure-cookie": "true",
		"bootstrap-account":       "default", // not in the file: the default
	} {
		if got := fs.Lookup(flag).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", flag, got, want)
		}
	}
	// A command-line list replaces the file's list, not adds to it.
	fs, err = runFlags(t, "control", "--config", path, "--trusted-proxies", "172.16.0.0/12")
	if !errors.Is(err, errRan) {
		t.Fatalf("control: %v", err)
	}
	if got := fs.Lookup("trusted-proxies").Value.String(); got != "[172.16.0.0/12]" {
		t.Errorf("--trusted-proxies = %s", got)
	}
	// The edge reads its own section; dev has none in this file.
	if _, err := runFlags(t, "edge", "--config", path); err == nil || !strings.Contains(err.Error(), "--control is required") {
		t.Errorf("edge: %v, want the check's --control is required", err)
	}
	_, err = runFlags(t, "dev", "--config", path)
	wantCode(t, err, codes.ConfigInvalid, "has no dev: section")
}

func TestConfigFileStrict(t *testing.T) {
	path := writeFile(t, "bad.yaml", `control:
  api_addr: 127.0.0.1:5000
  api-addr: 127.0.0.1:5001
  bogus: 1
  rate_burst: lots
  api_addr: 127.0.0.1:5002
  trusted_proxies: {a: b}
  config: other.yaml
`)
	_, err := runFlags(t, "control", "--config", path)
	wantCode(t, err, codes.ConfigInvalid,
		path+`:3: unknown key "api-addr" in section control (did you mean api_addr?`,
		path+`:4: unknown key "bogus" in section control`,
		path+`:5: control.rate_burst: "lots" is not an integer`,
		path+`:6: control.api_addr again (first on line 2)`,
		path+`:7: control.trusted_proxies: takes a list of strings, not a mapping`,
		path+`:8: unknown key "config"`)

	for text, want := range map[string]string{
		"contol:\n  api_addr: x\n":         `:1: unknown section "contol"`,
		"control: [a]\n":                   ":1: section \"control\" must be a mapping",
		"- control\n":                      ":1: the file must be a mapping of sections",
		"control:\n  store: [a\n":          "is not valid YAML",
		"control:\n  store:\n":             ":2: control.store: has no value",
		"control:\n  rate_burst: [1, 2]\n": ":2: control.rate_burst: takes one integer, not a list",
	} {
		_, err := runFlags(t, "control", "--config", writeFile(t, "c.yaml", text))
		wantCode(t, err, codes.ConfigInvalid, want)
	}
	_, err = runFlags(t, "control", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	wantCode(t, err, codes.ConfigInvalid, "Cannot read the configuration file")
}

// TestConfigFileEveryFlag sets every flag of every command from a file, to
// its default written as YAML: each flag, whatever its type, is a key.
func TestConfigFileEveryFlag(t *testing.T) {
	for _, d := range daemonCommands() {
		cmd, _ := d.build()
		var b strings.Builder
		b.WriteString(d.name + ":\n")
		n := 0
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if !inFile(f) {
				return
			}
			n++
			v := f.DefValue
			switch {
			case strings.HasPrefix(v, "["):
				// Quote each element: a plain "::1/128" is not valid in a
				// YAML flow sequence.
				var elems []string
				for _, e := range strings.Split(strings.Trim(v, "[]"), ",") {
					if e != "" {
						elems = append(elems, strconv.Quote(e))
					}
				}
				v = "[" + strings.Join(elems, ", ") + "]"
			default:
				v = `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`
			}
			b.WriteString("  " + fileKey(f.Name) + ": " + v + "\n")
		})
		if n < 20 {
			t.Fatalf("%s: only %d flags", d.name, n)
		}
		cf, err := readConfigFile(writeFile(t, "all.yaml", b.String()))
		if err != nil {
			t.Fatal(err)
		}
		cmd, _ = d.build()
		if err := cf.apply(cmd.Flags(), d.name); err != nil {
			t.Fatalf("%s:\n%s\n%v", d.name, b.String(), err)
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if inFile(f) && !f.Changed {
				t.Errorf("%s: --%s was not set from the file", d.name, f.Name)
			}
		})
	}
}

func TestConfigSectionNames(t *testing.T) {
	var names []string
	for _, d := range daemonCommands() {
		names = append(names, d.name)
	}
	if !slices.Equal(names, sectionNamesList()) {
		t.Errorf("daemonCommands %v, sectionNamesList %v", names, sectionNamesList())
	}
}

// runRoot runs the tollgated command line and returns what it printed.
func runRoot(args ...string) (string, error) {
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestConfigCheck(t *testing.T) {
	// The examples that packaging/ installs and the compose file mounts are valid.
	for _, example := range []string{
		filepath.Join("..", "..", "packaging", "tollgated.yaml"),
		filepath.Join("..", "..", "packaging", "docker", "tollgated.yaml"),
	} {
		out, err := runRoot("config", "check", example)
		if err != nil || out != example+": ok (sections: control, edge)\n" {
			t.Fatalf("config check %s: %q, %v", example, out, err)
		}
	}

	path := writeFile(t, "check.yaml", `control:
  rate_burst: 0
edge:
  control: http://127.0.0.1:4080
  max_conns: lots
dev:
  tcp_ports: 5-2
`)
	_, err := runRoot("config", "check", path)
	wantCode(t, err, codes.ConfigInvalid,
		"section control (line 1): --rate-burst must be at least 1",
		path+`:5: edge.max_conns: "lots" is not an integer`,
		`section dev (line 6): --tcp-ports "5-2"`)
	if strings.Count(err.Error(), "TG_9002") != 1 {
		t.Errorf("the code should appear once: %v", err)
	}
	_, err = runRoot("config", "check", writeFile(t, "empty.yaml", "# nothing\n"))
	wantCode(t, err, codes.ConfigInvalid, "has no section")
}

// TestConfigReferenceUpToDate fails when docs/tollgated-config.md is not
// what the flags produce: run 'go generate ./cmd/tollgated'.
func TestConfigReferenceUpToDate(t *testing.T) {
	var b bytes.Buffer
	if err := writeConfigReference(&b); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join("..", "..", configReferencePath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, b.Bytes()) {
		t.Fatalf("%s differs from the flags' definitions: run 'go generate ./cmd/tollgated' and commit it", configReferencePath)
	}
	// Every flag of every command is in it.
	for _, d := range daemonCommands() {
		cmd, _ := d.build()
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if inFile(f) && !bytes.Contains(committed, []byte("| `"+fileKey(f.Name)+"` | `--"+f.Name+"` |")) {
				t.Errorf("%s: --%s is missing", d.name, f.Name)
			}
		})
	}
}
