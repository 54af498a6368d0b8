package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/tollgate/tollgate/codes"
)

// TestFlagErrorsNameTheFlag: the errors of dev and edge flags name the
// flag the user gave, not another command's flag or a Go field.
func TestFlagErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		cmd      string
		args     []string
		want     []string
		mustNot  []string
		wantCode codes.Code
	}{
		{"dev", []string{"--tcp-ports", "5-2"}, []string{`--tcp-ports "5-2"`, "LO-HI"}, []string{"--tcp-addr-pool", "us="}, codes.ConfigInvalid},
		{"dev", []string{"--tcp-ports", "20000"}, []string{`--tcp-ports "20000"`}, []string{"--tcp-addr-pool"}, codes.ConfigInvalid},
		{"dev", []string{"--min-tls", "1.1"}, []string{"--min-tls 1.1 is below --min-tls-floor 1.2"}, []string{"DefaultMinTLS"}, codes.ConfigInvalid},
		{"dev", []string{"--min-tls-floor", "1.4"}, []string{`--min-tls-floor "1.4"`}, []string{"MinTLSFloor"}, codes.ConfigInvalid},
		{"dev", []string{"--region", "mars"}, []string{`--region "mars"`}, nil, codes.ConfigInvalid},
		{"dev", []string{"--tcp-host", "bad host!"}, []string{`--tcp-host "bad host!"`}, []string{"--tcp-addr-pool"}, codes.ConfigInvalid},
		{"edge", []string{"--region", "us", "--control", "http://127.0.0.1:1", "--min-tls", "1.0"}, []string{"--min-tls 1.0 is below --min-tls-floor"}, []string{"DefaultMinTLS"}, codes.ConfigInvalid},
		{"edge", []string{"--region", "us", "--control", "http://127.0.0.1:1", "--tcp-ports", "9-1"}, []string{`--tcp-ports "9-1"`}, []string{"edge:"}, codes.ConfigInvalid},
	} {
		_, err := runFlags(t, tc.cmd, tc.args...)
		if errors.Is(err, errRan) {
			t.Errorf("%s %v: the flags passed", tc.cmd, tc.args)
			continue
		}
		wantCode(t, err, tc.wantCode, tc.want...)
		for _, s := range tc.mustNot {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s %v: %q names %q", tc.cmd, tc.args, err, s)
			}
		}
	}
	// The defaults pass.
	if _, err := runFlags(t, "dev"); !errors.Is(err, errRan) {
		t.Errorf("dev with its defaults: %v", err)
	}
	if _, err := runFlags(t, "dev", "--min-tls", "1.1", "--min-tls-floor", "1.0"); !errors.Is(err, errRan) {
		t.Errorf("dev --min-tls 1.1 --min-tls-floor 1.0: %v", err)
	}
}

// TestCAFlagErrors: CA files that cannot be read are TG_9003, as the
// README's error table says; a --ca-dir where no CA can be made carries a
// code and names the flag.
func TestCAFlagErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := (acmeOptions{ca: "https://127.0.0.1:1/dir", caRoot: filepath.Join(dir, "missing.pem")}).acmeConfig()
	wantCode(t, err, codes.CAUnreadable, "--acme-ca-root", "missing.pem")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = (acmeOptions{ca: "https://127.0.0.1:1/dir", caRoot: notPEM}).acmeConfig()
	wantCode(t, err, codes.CAUnreadable, "--acme-ca-root "+notPEM+" holds no PEM certificate")
	_, err = readCertPool("--control-ca", notPEM)
	wantCode(t, err, codes.CAUnreadable, "--control-ca")

	// A directory that cannot be created (procfs refuses mkdir, even to root).
	_, err = loadCA("--ca-dir", "/proc/tollgate-no-such-dir")
	wantCode(t, err, codes.ConfigInvalid, "--ca-dir /proc/tollgate-no-such-dir: cannot create the local CA there")
	// A CA directory with a broken certificate.
	broken := filepath.Join(dir, "broken")
	if err := os.MkdirAll(broken, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem"} {
		if err := os.WriteFile(filepath.Join(broken, f), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err = loadCA("--ca-dir", broken)
	wantCode(t, err, codes.CAUnreadable, "--ca-dir "+broken+": ")
	if _, err := loadCA("--ca-dir", filepath.Join(dir, "new")); err != nil {
		t.Errorf("a new CA: %v", err)
	}
}

// TestDevBannerACME: with --acme-ca the banner does not tell users to
// trust the local CA for public HTTPS.
func TestDevBannerACME(t *testing.T) {
	d := devFile{HTTPSAddr: "127.0.0.1:8443", BaseDomain: "tollgate.localhost", CAFile: "/x/ca.pem", AgentAddr: "127.0.0.1:4443", Region: "us"}
	var local, acme bytes.Buffer
	printDevBanner(&local, d, devIngressFile{}, "/x/dev.json", false, "")
	printDevBanner(&acme, d, devIngressFile{}, "/x/dev.json", false, "https://acme.example/dir")
	if !strings.Contains(local.String(), "public HTTPS  https://*.tollgate.localhost:8443   (trust /x/ca.pem)") {
		t.Errorf("local CA banner:\n%s", local.String())
	}
	line := strings.SplitN(acme.String(), "\n", 3)[1]
	if strings.Contains(line, "trust") || !strings.Contains(line, "https://acme.example/dir") {
		t.Errorf("ACME banner's public HTTPS line: %q", line)
	}
}

func TestVersionCommand(t *testing.T) {
	out, err := runRoot("version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tollgated " + version + "\n", "  go        go1.", "  revision  "} {
		if !strings.Contains(out, want) {
			t.Errorf("version output %q lacks %q", out, want)
		}
	}
}

// TestTrafficPollDefaults: tollgated dev asks its in-process control plane
// for traffic subscriptions every second (a new subscription's events
// start within seconds), a separate edge every 10 s.
func TestTrafficPollDefaults(t *testing.T) {
	devCmd, _ := newDev()
	edgeCmd, _ := newEdge()
	for _, tc := range []struct {
		name string
		cmd  interface{ Flags() *pflag.FlagSet }
		want string
	}{{"dev", devCmd, "1s"}, {"edge", edgeCmd, "10s"}} {
		f := tc.cmd.Flags().Lookup("traffic-poll-interval")
		if f == nil || f.DefValue != tc.want || f.Value.String() != tc.want {
			t.Errorf("%s --traffic-poll-interval: %+v, want default %s", tc.name, f, tc.want)
		}
	}
}
