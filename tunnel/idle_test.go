package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// startPair starts a server and client session with Start; the channels
// get the reasons they end with.
func startPair(t *testing.T, tr string, scfg ServerConfig, ccfg ClientConfig) (*ServerSession, *ClientSession, chan error, chan error) {
	t.Helper()
	cm, sm := muxPair(t, tr, MuxConfig{})
	s := NewServerSession(sm, &fakeHandler{}, scfg)
	c := NewClientSession(cm, ccfg)
	serr, cerr := make(chan error, 1), make(chan error, 1)
	if err := s.Start(context.Background(), func(err error) { serr <- err }); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background(), func(err error) { cerr <- err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		_ = s.Close(nil)
		<-serr
		<-cerr
	})
	return s, c, serr, cerr
}

// TestIdleSessionHoldsNothing checks what an idle, authenticated session
// pair keeps between heartbeats (memory per idle session): over muxado no
// accept goroutine and, both ends being ours, no heartbeat stream and no
// echo goroutine; no proxy backlog buffer on the agent.
func TestIdleSessionHoldsNothing(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s, c, _, _ := startPair(t, tr, ServerConfig{}, ClientConfig{})
			ctx := testCtx(t, 10*time.Second)
			if _, err := c.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
				t.Fatal(err)
			}
			// A proxy stream through the backlog, so it had a buffer once.
			pst, err := s.OpenProxy(ctx, &ProxyHeader{ID: "x"})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = pst.Write([]byte("hi"))
			_, cst, err := c.AcceptProxy(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = cst.Close()
			_ = pst.Close()
			for _, side := range []*core{&s.core, &c.core} {
				if !side.hb.perBeat {
					t.Fatal("a session between our own ends keeps one heartbeat stream")
				}
			}
			// Over muxado this includes: no accept goroutine left.
			waitFor(t, 10*time.Second, "both sides between heartbeats", func() bool {
				return s.core.beatIdle() && c.core.beatIdle()
			})
			for name, side := range map[string]*core{"edge": &s.core, "agent": &c.core} {
				side.hb.mu.Lock()
				st := side.hb.st
				side.hb.mu.Unlock()
				if st != nil {
					t.Errorf("%s holds its heartbeat stream between beats", name)
				}
				if n := side.echoes.Load(); n != 0 {
					t.Errorf("%s runs %d heartbeat echoes between beats", name, n)
				}
			}
			c.proxies.mu.Lock()
			grown := cap(c.proxies.items) > len(c.proxies.one)
			c.proxies.mu.Unlock()
			if grown {
				t.Error("empty proxy backlog holds a grown buffer")
			}
		})
	}
}

// TestSDKPeerKeepsHeartbeatStream: a muxado peer that did not negotiate
// TCPALPN (an SDK) gets one heartbeat stream for the session, since the
// SDKs' responder never closes a heartbeat stream it answers.
func TestSDKPeerKeepsHeartbeatStream(t *testing.T) {
	c1, c2 := net.Pipe()
	t.Cleanup(func() { _ = c1.Close(); _ = c2.Close() })
	if streamPerBeat(NewMuxadoMux(c1, true, MuxConfig{})) {
		t.Fatal("stream per beat with a peer that did not negotiate TCPALPN")
	}
	cm, sm := muxPair(t, "tcp", MuxConfig{})
	if !streamPerBeat(cm) || !streamPerBeat(sm) {
		t.Fatal("no stream per beat between our own ends over TLS+muxado")
	}
}

// TestServeStreamsBurst opens many streams at once, some before the
// session starts: each is handed over exactly once, and the accept
// goroutine ends when none is left. (The backlog holds the whole burst:
// muxado resets streams beyond it.)
func TestServeStreamsBurst(t *testing.T) {
	const n = 300
	cm, sm := muxPair(t, "tcp", MuxConfig{AcceptBacklog: n})
	mm := sm.(*muxadoMux)
	open := func(from, to int) {
		for i := from; i < to; i++ {
			st, err := cm.OpenStream(context.Background(), StreamType(i))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	open(0, 20)
	// muxado has queued them (the peer's frames came before our reads)
	waitFor(t, 10*time.Second, "early streams counted", func() bool {
		mm.streams.mu.Lock()
		defer mm.streams.mu.Unlock()
		return mm.streams.opened == 20
	})
	var mu sync.Mutex
	seen := map[StreamType]int{}
	dead := make(chan error, 1)
	mm.serveStreams(func(t StreamType, st Stream) {
		mu.Lock()
		seen[t]++
		mu.Unlock()
		_ = st.Close()
	}, func(err error) { dead <- err })
	open(20, n)
	waitFor(t, 10*time.Second, "every stream handed over", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	waitFor(t, 10*time.Second, "accept goroutine gone", func() bool {
		mm.streams.mu.Lock()
		defer mm.streams.mu.Unlock()
		return !mm.streams.accepting
	})
	for i := 0; i < n; i++ {
		if seen[StreamType(i)] != 1 {
			t.Fatalf("stream %d handed over %d times", i, seen[StreamType(i)])
		}
	}
	_ = cm.Close()
	select {
	case err := <-dead:
		if err == nil {
			t.Fatal("session end reported without a reason")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session end not reported")
	}
}

// TestStartEndsWithReason: Start reports the end like Run, after the
// session's goroutines are gone, and refuses a second start.
func TestStartEndsWithReason(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			check := goroutineBaseline(t)
			t.Run("session", func(t *testing.T) {
				s, c, serr, cerr := startPair(t, tr, ServerConfig{}, ClientConfig{})
				ctx := testCtx(t, 10*time.Second)
				if _, err := c.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
					t.Fatal(err)
				}
				if err := s.Start(ctx, func(error) {}); err == nil {
					t.Fatal("second Start accepted")
				}
				why := errors.New("edge shutting down")
				_ = s.Close(why)
				err := <-serr
				serr <- err // for the cleanup
				if !errors.Is(err, why) {
					t.Fatalf("server ended with %v, want %v", err, why)
				}
				err = <-cerr
				cerr <- err
				if err == nil {
					t.Fatal("client ended without a reason")
				}
			})
			check()
		})
	}
}

// TestProxyQueue: FIFO, bounded (push waits for room or its ctx), and
// no backing array once empty.
func TestProxyQueue(t *testing.T) {
	q := newProxyQueue(2)
	ctx := context.Background()
	hdr := func(i int) proxyStream { return proxyStream{hdr: &ProxyHeader{ID: fmt.Sprint(i)}} }
	if !q.push(ctx, hdr(1)) || !q.push(ctx, hdr(2)) {
		t.Fatal("push refused below the bound")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if q.push(cctx, hdr(3)) {
		t.Fatal("push beyond the bound did not wait")
	}
	pushed := make(chan bool, 1)
	go func() { pushed <- q.push(ctx, hdr(3)) }()
	for want := 1; want <= 3; want++ {
		var p proxyStream
		var ok bool
		waitFor(t, 10*time.Second, "an entry", func() bool { p, ok = q.tryPop(); return ok })
		if p.hdr.ID != fmt.Sprint(want) {
			t.Fatalf("popped %s, want %d", p.hdr.ID, want)
		}
	}
	if !<-pushed {
		t.Fatal("waiting push failed")
	}
	if _, ok := q.tryPop(); ok {
		t.Fatal("popped from an empty queue")
	}
	if cap(q.items) > len(q.one) {
		t.Fatalf("empty queue keeps a grown array of %d", cap(q.items))
	}
}
