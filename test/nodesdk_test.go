package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// nodeProject returns node's path and the absolute path of the npm
// project in test/<name>, installed with npm ci (pinned by its
// package-lock.json) when the package marker, a path under node_modules,
// is missing. scripts/test installs both projects before the tests run.
func nodeProject(t *testing.T, name, marker string) (dir, node string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("this test needs Node.js ≥ 18 and npm: apt-get install nodejs npm (scripts/test does)")
	}
	dir, err = filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", marker)); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Fatalf("test/%s/node_modules is missing and npm is not installed", name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	return dir, node
}

// nodeSDKDir is test/nodesdk: the Node agent SDK @ngrok/ngrok 1.7.0,
// whose core is the Rust `ngrok` crate.
func nodeSDKDir(t *testing.T) (dir, node string) {
	t.Helper()
	return nodeProject(t, "nodesdk", "@ngrok/ngrok/package.json")
}

// TestNodeSDKComesBackAfterEdgeRestart connects the hosted platform's Node
// SDK to `tollgated dev`, then crashes the edge (SIGKILL: no close frames
// at all) and, separately, stops it with SIGTERM, restarting it at once on
// the same data dir and ports as a supervisor would. Each time the SDK's
// URL must serve again; the time from the stop to the first 200 is logged.
//
// The SDK reconnects on its own schedule, which no edge can change: at
// once, 50 ms later, 2.55 s later, then 125 s later (tokio-retry's
// ExponentialBackoff::from_millis(50), squared each time, with no cap;
// docs/agent-protocol.md#restarts). An edge that is back within ~2.5 s of
// the moment the SDK lost its session gets it back within seconds; a
// later one waits two minutes, which is what the issue saw.
func TestNodeSDKComesBackAfterEdgeRestart(t *testing.T) {
	dir, node := nodeSDKDir(t)
	dataDir := t.TempDir()
	dev := startDev(t, dataDir)
	up := echoUpstream(t)
	sdk := start(t, node, []string{
		"TOLLGATE_AUTHTOKEN=" + dev.info.Authtoken,
		"TOLLGATE_SERVER_ADDR=" + dev.info.AgentAddr,
		"TOLLGATE_ROOT_CA=" + dev.info.CAFile,
		"TOLLGATE_UPSTREAM=" + up.Listener.Addr().String(),
	}, filepath.Join(dir, "agent.js"))
	url := sdk.waitFor(regexp.MustCompile(`(?m)^URL (\S+)`), 30*time.Second)[1]
	if err := getOK(dev.client(false), url+"/hello"); err != nil {
		t.Fatalf("before any restart: %v", err)
	}
	info := dev.info
	for _, tc := range []struct {
		name string
		stop func(*devServer)
	}{
		{"crash", func(d *devServer) {
			_ = d.cmd.Process.Signal(syscall.SIGKILL)
			d.wait(10 * time.Second)
		}},
		{"sigterm", func(d *devServer) { _ = d.stop(20 * time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			tc.stop(dev)
			dev = startDev(t, dataDir, "--api-addr", hostPort(info.APIURL), "--agent-addr", info.AgentAddr,
				"--https-addr", info.HTTPSAddr, "--http-addr", info.HTTPAddr)
			upAfter := time.Since(began)
			c := dev.client(false)
			c.Timeout = 5 * time.Second
			eventually(t, 20*time.Second, func() error { return getOK(c, url+"/hello") })
			t.Logf("%s: the Node SDK's URL served again %s after the edge stopped (edge up after %s)",
				tc.name, time.Since(began).Round(time.Millisecond), upAfter.Round(time.Millisecond))
			c.CloseIdleConnections()
		})
	}
}
