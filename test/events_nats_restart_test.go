package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsServer is a nats-server with JetStream this test runs itself, on a
// fixed loopback port and store directory so that it can be stopped and
// started again as the same server.
type natsServer struct {
	t       *testing.T
	bin     string
	port    int
	dir     string
	cmd     *exec.Cmd
	done    chan struct{}
	started int
}

func (n *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// startNATSServer starts nats-server -js on an ephemeral loopback port
// (never the machine's 4222) and waits until it accepts connections.
func startNATSServer(t *testing.T) *natsServer {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("nats-server is not installed (scripts/test installs it): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	n := &natsServer{t: t, bin: bin, port: port, dir: t.TempDir()}
	n.start()
	t.Cleanup(func() { n.stop(syscall.SIGKILL) })
	return n
}

func (n *natsServer) start() {
	n.t.Helper()
	n.started++
	logf, err := os.Create(filepath.Join(n.dir, fmt.Sprintf("nats-server-%d.log", n.started)))
	if err != nil {
		n.t.Fatal(err)
	}
	defer logf.Close()
	n.cmd = exec.Command(n.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(n.port), "-js", "-sd", filepath.Join(n.dir, "store"))
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		n.t.Fatalf("starting nats-server: %v", err)
	}
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(n.cmd, n.done)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(n.port), time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-n.done:
			b, _ := os.ReadFile(logf.Name())
			n.t.Fatalf("nats-server exited at start: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("nats-server did not listen on port %d: %v", n.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop signals the server and waits (at most 20 s) until it has exited.
func (n *natsServer) stop(sig syscall.Signal) {
	n.t.Helper()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
		n.t.Errorf("nats-server did not exit on %v", sig)
	}
	n.cmd = nil
}

// TestEventsNATSRestart stops the NATS server the control plane delivers
// to in the middle of a burst of API writes — with SIGTERM, and in a
// second round with SIGKILL — and starts it again on the same port and
// store. Afterwards every acknowledged write's event is in the stream
// exactly once (by Nats-Msg-Id, the event ID; a batch resent after an
// unanswered publish is dropped by the stream's duplicate window).
func TestEventsNATSRestart(t *testing.T) {
	ns := startNATSServer(t)
	const stream = "TG_EVENTS_RESTART"
	const subject = "tollgate.restart.events"
	func() {
		nc, err := nats.Connect(ns.url(), nats.Timeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject},
			Duplicates: 10 * time.Minute, Storage: jetstream.FileStorage}); err != nil {
			t.Fatalf("creating a JetStream stream: %v", err)
		}
	}()

	cp, key := startEventsControl(t, filepath.Join(t.TempDir(), "cp.db"))
	destID := subscribeBotUsersToNATS(t, cp, key, ns.url(), subject)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A steady stream while the server goes and comes.
	writers := startBotUserWriters(ctx, t, cp.apiURL, key, 3000, 20*time.Millisecond, true)
	ackedN := writers.n
	// Two rounds: writes flow, the server goes away mid-stream, writes go
	// on while it is down, it comes back, writes go on again.
	delivery := func() map[string]any {
		return api(t, cp.apiURL, key, "GET", "/event_destinations/"+destID, nil, 200)["tollgate_delivery"].(map[string]any)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		n := ackedN()
		poll(t, "20 more acknowledged writes before the stop", func() bool { return ackedN() >= n+20 })
		lastErrAt := delivery()["last_error_at"]
		ns.stop(sig)
		n = ackedN()
		poll(t, "10 acknowledged writes while NATS is down", func() bool { return ackedN() >= n+10 })
		// The deliverer has noticed the outage (a batch failed) before the
		// server comes back.
		var down map[string]any
		poll(t, "a failed delivery while NATS is down", func() bool {
			down = delivery()
			return down["last_error_at"] != nil && down["last_error_at"] != lastErrAt
		})
		t.Logf("NATS down after %v: %v", sig, down["last_error"])
		ns.start()
		n = ackedN()
		poll(t, "20 acknowledged writes after the restart", func() bool { return ackedN() >= n+20 })
		t.Logf("after %v: %d acknowledged writes", sig, ackedN())
	}
	cancel()
	acked := writers.wait()

	sentinel := api(t, cp.apiURL, key, "POST", "/bot_users", map[string]any{"name": "sentinel"}, 201)["id"].(string)
	nc, err := nats.Connect(ns.url(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	st, err := js.Stream(sctx, stream)
	if err != nil {
		t.Fatalf("the stream after two restarts: %v", err)
	}
	// Delivery is in commit order: once the sentinel is there, so is
	// everything acknowledged before it.
	evs := waitStream(t, st, "the sentinel's event", func(e streamEvent) bool {
		obj, _ := e.body["object"].(map[string]any)
		return obj["id"] == sentinel
	})
	byObject := map[string]int{}
	byID := map[string]int{}
	for _, e := range evs {
		if e.typ != "bot_user_created.v0" || e.body["event_type"] != e.typ {
			t.Errorf("event %s: header type %q, body type %v", e.msgID, e.typ, e.body["event_type"])
		}
		if e.msgID == "" || e.msgID != e.body["event_id"] {
			t.Errorf("Nats-Msg-Id %q is not the event ID %v", e.msgID, e.body["event_id"])
		}
		obj, _ := e.body["object"].(map[string]any)
		id, _ := obj["id"].(string)
		byObject[id]++
		byID[e.msgID]++
	}
	for _, id := range append(acked, sentinel) {
		if byObject[id] != 1 {
			t.Errorf("bot user %s: %d events, want 1", id, byObject[id])
		}
	}
	for id, n := range byID {
		if n != 1 {
			t.Errorf("event %s is in the stream %d times", id, n)
		}
	}
	// A write cut off by the end of the burst may have committed unanswered:
	// at most one per writer.
	if len(evs) > len(acked)+1+4 {
		t.Errorf("the stream has %d events for %d acknowledged writes and the sentinel", len(evs), len(acked))
	}
	t.Logf("%d acknowledged writes, %d events in the stream", len(acked), len(evs))
	if d := delivery(); d["pending"].(float64) != 0 || d["failures"].(float64) != 0 {
		t.Errorf("delivery status after recovery: %v", d)
	}
}
