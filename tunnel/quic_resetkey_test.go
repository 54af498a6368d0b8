package tunnel

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestQUICResetKeyPersists checks that the stateless-reset key is created
// once, with mode 0600, and reused by the next listener on the same dir.
func TestQUICResetKeyPersists(t *testing.T) {
	dir := t.TempDir()
	k1, err := loadQUICResetKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, QUICResetKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file: mode %v, %d bytes; want 0600, 32", fi.Mode().Perm(), fi.Size())
	}
	k2, err := loadQUICResetKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if *k1 != *k2 {
		t.Fatal("the key changed between two loads of the same dir")
	}
	if k3, _ := loadQUICResetKey(""); bytes.Equal(k3[:], make([]byte, 32)) {
		t.Fatal("a key without a dir is all zeros")
	}
	// A truncated file is replaced, not used.
	if err := os.WriteFile(filepath.Join(dir, QUICResetKeyFile), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	k4, err := loadQUICResetKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, QUICResetKeyFile)); !bytes.Equal(b, k4[:]) {
		t.Fatal("a truncated key file was not replaced by the new key")
	}
}

// TestQUICRestartedListenerResetsOldConnections is the crash of an edge:
// the listener stops without a CONNECTION_CLOSE and a new one (same key
// dir, same UDP port) takes its place. The agent's next packet must get a
// stateless reset that ends its connection at once — not after its idle
// or heartbeat timeout. Without a persisted key quic-go sends no reset
// and the connection lives on until quicMaxIdleTimeout (30 s).
func TestQUICRestartedListenerResetsOldConnections(t *testing.T) {
	ctx, client := crashedQUICListener(t, false)

	// The agent's next packet: a stream with a heartbeat-sized write.
	began := time.Now()
	st, err := client.OpenStream(ctx, StreamHeartbeat)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = st.Write([]byte{0, 0, 0, 1})
	select {
	case <-client.Done():
		t.Logf("the old connection ended %s after its next packet", time.Since(began).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the old connection is still open 10 s after the restarted listener saw its packet: no stateless reset")
	}
}

// TestQUICCrashFoundWithoutTraffic: an idle agent learns of its edge's
// crash from its own liveness probes, with no stream or heartbeat to send:
// keep-alive PINGs are too short to draw a stateless reset, so without the
// probes the connection would live until the idle timeout (30 s).
func TestQUICCrashFoundWithoutTraffic(t *testing.T) {
	_, client := crashedQUICListener(t, true)
	began := time.Now()
	select {
	case <-client.Done():
		t.Logf("the idle connection ended %s after the restart", time.Since(began).Round(time.Millisecond))
	case <-time.After(quicMaxIdleTimeout / 2):
		t.Fatalf("an idle connection to a restarted listener is still open after %s: the probes drew no stateless reset", quicMaxIdleTimeout/2)
	}
}

// crashedQUICListener connects a client to a listener, then crashes the
// listener (no CONNECTION_CLOSE) and starts another on the same port with
// the same key dir. It returns the client, whose connection the new
// listener does not know. With quiet, the crash waits until the client
// has sent nothing for 300 ms (the handshake's last ACKs and connection
// IDs are out), so that only what the client sends later can meet the
// new listener.
func crashedQUICListener(t *testing.T, quiet bool) (context.Context, Mux) {
	t.Helper()
	dir := t.TempDir()
	ln1, err := ListenQUICAddr("127.0.0.1:0", serverTLS(t), QUICListenerConfig{KeyDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := ln1.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	t.Cleanup(cancel)
	accepted := make(chan Mux, 1)
	go func() {
		m, err := ln1.Accept(ctx)
		if err == nil {
			accepted <- m
		}
	}()
	client, err := DialQUIC(ctx, addr, clientTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("the listener accepted no connection")
	}

	if quiet {
		conn := client.(*quicMux).conn
		for last, n := uint64(0), 0; n < 3; {
			time.Sleep(100 * time.Millisecond)
			if sent := conn.ConnectionStats().PacketsSent; sent != last {
				last, n = sent, 0
			} else {
				n++
			}
		}
	}
	// The crash: the transport stops, no CONNECTION_CLOSE is sent.
	ln1.tr.Close()
	ln1.ln.Close()
	ln1.pc.Close()
	ln2, err := ListenQUICAddr(addr, serverTLS(t), QUICListenerConfig{KeyDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln2.Close() })
	return ctx, client
}
