package test

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestDebugAddr: --debug-addr serves Go's profiler (the heap profile with
// the runtime's memory figures); an address in use stops the process with
// TG_9001.
func TestDebugAddr(t *testing.T) {
	addr := freeAddr(t)
	dev := startDev(t, "", "--debug-addr", addr)
	if live := liveKiB(t, addr); live <= 0 {
		t.Fatalf("heap in use %d KiB", live)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := start(t, bins.tollgated, nil, "control", "--store", t.TempDir()+"/cp.db", "--api-addr", "127.0.0.1:0",
		"--dashboard-addr", "127.0.0.1:0", "--debug-addr", ln.Addr().String())
	code, ok := p.wait(30 * time.Second)
	if !ok || code == 0 || !strings.Contains(p.output(), "TG_9001") || !strings.Contains(p.output(), "--debug-addr") {
		t.Fatalf("exit %d (exited %v); output:\n%s", code, ok, p.output())
	}
	_ = dev
}
