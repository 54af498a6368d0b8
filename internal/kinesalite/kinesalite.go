// Package kinesalite starts kinesalite, a Kinesis emulator on Node.js, for
// tests: the npm project in test/kinesalite (installed by `npm ci` in
// scripts/test), on an ephemeral loopback port. Not for production use.
package kinesalite

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Start runs kinesalite from the npm project in dir (test/kinesalite,
// relative to the test's package directory) and returns its URL. With
// certFile and keyFile it serves HTTPS with that certificate, else plain
// HTTP. It stops at the end of the test; a project not installed fails the
// test with what to run.
func Start(t testing.TB, dir, certFile, keyFile string) string {
	t.Helper()
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kinesalite")); err != nil {
		t.Fatalf("kinesalite is not installed: run scripts/test, or npm ci in test/kinesalite (%v)", err)
	}
	cmd := exec.Command("node", "start.js")
	cmd.Dir = dir
	scheme := "http"
	if certFile != "" {
		cmd.Env = append(os.Environ(), "KINESALITE_CERT="+certFile, "KINESALITE_KEY="+keyFile)
		scheme = "https"
	}
	stdin, _ := cmd.StdinPipe() // kinesalite exits when this closes
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting kinesalite: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	port, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("kinesalite printed no port: %v", err)
	}
	return scheme + "://127.0.0.1:" + strings.TrimSpace(port)
}
