package tunnel

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// slowLinkRate is the paced link's rate each way: 64 KB/s, the agent link
// of the report (a toxiproxy bandwidth toxic).
const slowLinkRate = 64 << 10

// pacer releases bytes at rate per second, shared by whoever sends through
// it (one per direction).
type pacer struct {
	mu   sync.Mutex
	next time.Time
	rate int
}

// wait blocks until n more bytes may go.
func (p *pacer) wait(n int) {
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(n) * time.Second / time.Duration(p.rate))
	at := p.next
	p.mu.Unlock()
	time.Sleep(time.Until(at)) // pacing the link, not waiting for an event
}

// slowTCPRelay listens on loopback and relays each connection to target,
// pacing each direction to rate bytes/s in 1 KiB chunks.
func slowTCPRelay(t *testing.T, target string, rate int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	pipe := func(dst, src net.Conn, p *pacer) {
		defer wg.Done()
		buf := make([]byte, 1024)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.wait(n)
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = dst.Close()
		_ = src.Close()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			// A small receive buffer on the relay's side, as on a real slow
			// link, where bytes wait in the sender's queue, not the relay's.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(16 << 10)
			}
			if tc, ok := s.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(16 << 10)
			}
			wg.Add(2)
			go pipe(s, c, &pacer{rate: rate})
			go pipe(c, s, &pacer{rate: rate})
		}
	}()
	return ln.Addr().String()
}

// slowUDPRelay relays datagrams between one client and target, pacing each
// direction to rate bytes/s with a bounded queue (a router's: 64 KiB,
// datagrams beyond it are dropped).
func slowUDPRelay(t *testing.T, target string, rate int) string {
	t.Helper()
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.Dial("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = front.Close(); _ = back.Close(); wg.Wait() })
	var mu sync.Mutex
	var client net.Addr
	type queue chan []byte
	toServer, toClient := make(queue, 64), make(queue, 64) // ≤ 64 datagrams of ≤ 1.5 KB queued
	enqueue := func(q queue, b []byte) {
		select {
		case q <- append([]byte(nil), b...):
		default: // queue full: dropped, as a router would
		}
	}
	wg.Add(4)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, addr, err := front.ReadFrom(buf)
			if err != nil {
				close(toServer)
				return
			}
			mu.Lock()
			client = addr
			mu.Unlock()
			enqueue(toServer, buf[:n])
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := back.Read(buf)
			if err != nil {
				close(toClient)
				return
			}
			enqueue(toClient, buf[:n])
		}
	}()
	go func() {
		defer wg.Done()
		p := &pacer{rate: rate}
		for b := range toServer {
			p.wait(len(b))
			_, _ = back.Write(b)
		}
	}()
	go func() {
		defer wg.Done()
		p := &pacer{rate: rate}
		for b := range toClient {
			p.wait(len(b))
			mu.Lock()
			to := client
			mu.Unlock()
			_, _ = front.WriteTo(b, to)
		}
	}()
	return front.LocalAddr().String()
}

// TestHeartbeatsSurviveSlowLink: over a link paced to 64 KB/s each way, an
// agent sends 384 KiB to the edge on a proxy stream (6 s of link time)
// while both sides beat every 200 ms with a 2 s tolerance. The echoes wait
// behind the bulk data (muxado's write queue and the kernel's buffers;
// over QUIC the paced queue), yet the session must not be declared dead:
// bytes arriving from the peer prove it alive. The transfer completes.
func TestHeartbeatsSurviveSlowLink(t *testing.T) {
	// Over TCP/muxado this passes because of the autotuned send window
	// (sendwindow.go): with muxado's 4 MiB in flight the agent's own beat
	// waited behind its data in the kernel's send buffer for longer than
	// the tolerance, while it received almost nothing from the edge.
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			ctx := testCtx(t, 60*time.Second)
			ln := newTestListener(t, tr, MuxConfig{})
			var addr string
			if tr == "tcp" {
				addr = slowTCPRelay(t, ln.addr, slowLinkRate)
			} else {
				addr = slowUDPRelay(t, ln.addr, slowLinkRate)
			}
			accepted := make(chan Mux, 1)
			go func() {
				m, err := ln.accept(ctx)
				if err != nil {
					t.Error(err)
					close(accepted)
					return
				}
				accepted <- m
			}()
			cm := dialTest(ctx, t, tr, addr, MuxConfig{})
			sm := <-accepted
			if sm == nil {
				t.FailNow()
			}
			t.Cleanup(func() { _ = sm.Close() })
			hb := func(c *ClientConfig, s *ServerConfig) {
				c.HeartbeatInterval, c.HeartbeatTolerance = 200*time.Millisecond, 2*time.Second
				s.HeartbeatInterval, s.HeartbeatTolerance = 200*time.Millisecond, 2*time.Second
				s.MinHeartbeatInterval, s.MinHeartbeatTolerance = -1, -1
			}
			var ccfg ClientConfig
			var scfg ServerConfig
			hb(&ccfg, &scfg)
			server, client := NewServerSession(sm, &fakeHandler{}, scfg), NewClientSession(cm, ccfg)
			serverErr, clientErr := make(chan error, 1), make(chan error, 1)
			go func() { serverErr <- server.Run(context.Background()) }()
			go func() { clientErr <- client.Run(context.Background()) }()
			t.Cleanup(func() { _ = client.Close(); _ = server.Close(nil); <-serverErr; <-clientErr })

			if _, err := client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
				t.Fatal(err)
			}
			pst, err := server.OpenProxy(ctx, &ProxyHeader{ID: "b", ClientAddr: "192.0.2.1:1", Proto: "http"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pst.Write([]byte("GET /big HTTP/1.1\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			_, ast, err := client.AcceptProxy(ctx)
			if err != nil {
				t.Fatal(err)
			}
			const size = 384 << 10
			go func() {
				_, _ = ast.Write(make([]byte, size))
				_ = ast.CloseWrite()
			}()
			start := time.Now()
			n, err := io.Copy(io.Discard, pst)
			if err != nil || n != size {
				var ends []string
				for _, ch := range []chan error{serverErr, clientErr} {
					select {
					case e := <-ch:
						ch <- e
						ends = append(ends, e.Error())
					case <-time.After(2 * time.Second):
						ends = append(ends, "running")
					}
				}
				t.Fatalf("received %d of %d bytes in %s: %v (edge session: %s; agent session: %s)", n, size, time.Since(start), err, ends[0], ends[1])
			}
			select {
			case err := <-serverErr:
				serverErr <- err
				t.Fatalf("edge session ended during the transfer: %v", err)
			case err := <-clientErr:
				clientErr <- err
				t.Fatalf("agent session ended during the transfer: %v", err)
			default:
			}
			t.Logf("%d KiB in %s over a %d KB/s link; session alive", size>>10, time.Since(start).Round(time.Millisecond), slowLinkRate>>10)
		})
	}
}
