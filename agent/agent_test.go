package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/tunnel"
)

// fastBackoff records its use and waits 1 ms.
type fastBackoff struct {
	next, reset atomic.Int32
}

func (b *fastBackoff) Next() time.Duration { b.next.Add(1); return time.Millisecond }
func (b *fastBackoff) Reset()              { b.reset.Add(1) }

// runningAgent is an Agent running in the background.
type runningAgent struct {
	*Agent
	cancel context.CancelFunc
	done   chan error
	events chan Event
	bo     *fastBackoff
}

// startAgent runs an Agent for cfg with a fastBackoff until the test ends;
// each setup func adjusts the Agent before Run.
func startAgent(t *testing.T, cfg Config, setup ...func(*Agent)) *runningAgent {
	t.Helper()
	events := make(chan Event, 64)
	cfg.OnEvent = func(e Event) {
		select {
		case events <- e:
		default:
		}
	}
	a, err := New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	bo := &fastBackoff{}
	a.backoff = bo
	for _, f := range setup {
		f(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{Agent: a, cancel: cancel, done: make(chan error, 1), events: events, bo: bo}
	go func() { ra.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ra.done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return within 20s of cancel")
		}
	})
	return ra
}

func (ra *runningAgent) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-ra.Ready():
	case err := <-ra.done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent not ready within 20s")
	}
}

func (ra *runningAgent) waitDone(t *testing.T) error {
	t.Helper()
	select {
	case err := <-ra.done:
		ra.done <- err // for Cleanup
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s")
		return nil
	}
}

func (ra *runningAgent) waitEvent(t *testing.T, kind EventKind) Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-ra.events:
			if e.Kind == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event within 20s", kind)
		}
	}
}

// waitFor polls cond until it holds or 20s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func baseConfig(t *testing.T, e *fakeEdge, transport string, eps ...config.Endpoint) Config {
	return Config{
		Authtoken:  "2abc_secret",
		ServerAddr: e.addr,
		RootCAFile: caFile(t),
		Transport:  transport,
		Endpoints:  eps,
		Version:    "9.8.7",
	}
}

// proxyRequest opens a proxy stream from the edge session for bindID, sends
// an HTTP request and returns the response body.
func proxyRequest(t *testing.T, s *tunnel.ServerSession, bindID string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.OpenProxy(ctx, &tunnel.ProxyHeader{ID: bindID, ClientAddr: "203.0.113.9:5555", Proto: "https"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest("GET", "https://web.tollgate.localhost/hello", nil)
	req.Close = true
	if err := req.Write(st); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(st), req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func helloUpstream(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello from "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestAgentEndToEnd(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) {
			e := newFakeEdge(t, edgeOpts{tcp: true, quic: true})
			cfg := baseConfig(t, e, transport, config.Endpoint{Name: "web", Proto: "http", URL: "https://web.tollgate.localhost", Upstream: helloUpstream(t), CIDRAllow: []string{"10.0.0.0/8"}})
			cfg.WebAddr = "127.0.0.1:0"
			ra := startAgent(t, cfg)
			sess := e.waitSession(t)
			ra.waitReady(t)

			if ra.Transport() != transport || sess.Transport() != transport {
				t.Fatalf("agent transport %q, edge sees %q; want %q", ra.Transport(), sess.Transport(), transport)
			}
			eps := ra.Endpoints()
			if len(eps) != 1 || eps[0].PublicURL != "https://web.tollgate.localhost:8443" || eps[0].State != StateOnline || eps[0].BindID == "" {
				t.Fatalf("endpoints = %+v", eps)
			}
			st := ra.Status()
			if st.SessionID != "ts_1" || st.Region != "eu" || st.State != SessionOnline {
				t.Fatalf("status = %+v", st)
			}

			auths, binds, _ := e.snapshot()
			a := auths[0]
			if strings.Join(a.Version, ",") != "3,2" || a.ClientID != "" || a.Extra.Authtoken.Reveal() != "2abc_secret" ||
				a.Extra.ClientType != "tollgate" || a.Extra.UserAgent != "tollgate/9.8.7" || a.Extra.Version != "9.8.7" ||
				a.Extra.OS == "" || a.Extra.Arch == "" || a.Extra.HeartbeatInterval != int64(10*time.Second) ||
				a.Extra.HeartbeatTolerance != int64(15*time.Second) {
				t.Fatalf("auth = %+v", a)
			}
			if stop, restart, update := sess.Capabilities(); !stop || !restart || update {
				t.Fatalf("capabilities stop=%v restart=%v update=%v", stop, restart, update)
			}
			b := binds[0]
			if b.Proto != "https" || b.Extra.Name != "web" || !strings.HasPrefix(b.ForwardsTo, "http://127.0.0.1:") {
				t.Fatalf("bind = %+v", b)
			}
			opts, err := tunnel.DecodeHTTPOptions(b.Opts)
			if err != nil || opts.URL != "https://web.tollgate.localhost" || opts.IPRestriction == nil || len(opts.Unsupported) != 0 {
				t.Fatalf("bind opts %s → %+v, %v", b.Opts, opts, err)
			}

			resp, body := proxyRequest(t, sess, eps[0].BindID)
			if resp.StatusCode != 200 || body != "hello from /hello" {
				t.Fatalf("proxied: %d %q", resp.StatusCode, body)
			}
			waitFor(t, "connection metrics", func() bool {
				ep := ra.Endpoints()[0]
				return ep.ConnsTotal == 1 && ep.ConnsOpen == 0
			})

			// The inspection API lists the endpoint.
			r, err := http.Get("http://" + ra.WebAddr() + "/api/tunnels")
			if err != nil {
				t.Fatal(err)
			}
			var list struct {
				Tunnels []struct {
					Name      string `json:"name"`
					PublicURL string `json:"public_url"`
				} `json:"tunnels"`
			}
			_ = json.NewDecoder(r.Body).Decode(&list)
			r.Body.Close()
			if len(list.Tunnels) != 1 || list.Tunnels[0].PublicURL != "https://web.tollgate.localhost:8443" {
				t.Fatalf("/api/tunnels = %+v", list)
			}

			// Cancel: unbind, close, Run returns nil.
			ra.cancel()
			if err := ra.waitDone(t); err != nil {
				t.Fatalf("Run = %v, want nil", err)
			}
			_, _, unbinds := e.snapshot()
			if len(unbinds) != 1 || unbinds[0] != eps[0].BindID {
				t.Fatalf("unbinds = %v, want [%s]", unbinds, eps[0].BindID)
			}
			if ra.Status().State != SessionStopped {
				t.Fatalf("state after Run = %q", ra.Status().State)
			}
		})
	}
}

func TestAgentReconnectKeepsURL(t *testing.T) {
	e := newFakeEdge(t, edgeOpts{tcp: true})
	ra := startAgent(t, baseConfig(t, e, "tcp",
		config.Endpoint{Name: "web", Proto: "http", Upstream: helloUpstream(t)},
		config.Endpoint{Name: "db", Proto: "tcp", Upstream: "5432"}))
	first := e.waitSession(t)
	ra.waitReady(t)
	before := ra.Endpoints()

	// The connection drops.
	_ = first.Close(errors.New("test: connection dropped"))
	ev := ra.waitEvent(t, EventDisconnected)
	if ev.Err == nil {
		t.Fatal("disconnect event without a cause")
	}
	second := e.waitSession(t)
	ra.waitEvent(t, EventConnected)

	auths, binds, _ := e.snapshot()
	if len(auths) != 2 || auths[1].ClientID != auths[0].ClientID && auths[1].ClientID != "client-1" || auths[1].Extra.Cookie != "cookie-1" {
		t.Fatalf("re-auth: ClientId %q Cookie %q; want client-1, cookie-1", auths[1].ClientID, auths[1].Extra.Cookie)
	}
	if len(binds) != 4 {
		t.Fatalf("%d binds, want 4", len(binds))
	}
	for i, b := range binds[2:] {
		if b.ID != before[i].BindID || b.Extra.Token != "token-"+before[i].Name {
			t.Fatalf("re-bind %d: Id %q Token %q; want %q, token-%s", i, b.ID, b.Extra.Token, before[i].BindID, before[i].Name)
		}
	}
	after := ra.Endpoints()
	for i := range after {
		if after[i].PublicURL != before[i].PublicURL || after[i].State != StateOnline {
			t.Fatalf("endpoint %d after reconnect: %+v, before %+v", i, after[i], before[i])
		}
	}
	waitFor(t, "a backoff reset per session", func() bool { return ra.bo.reset.Load() >= 2 })
	if ra.bo.next.Load() < 1 {
		t.Fatalf("backoff Next %d, want ≥ 1", ra.bo.next.Load())
	}
	// Traffic flows on the new session.
	if resp, body := proxyRequest(t, second, after[0].BindID); resp.StatusCode != 200 || body != "hello from /hello" {
		t.Fatalf("after reconnect: %d %q", resp.StatusCode, body)
	}
}

func TestAgentPermanentAuthError(t *testing.T) {
	e := newFakeEdge(t, edgeOpts{tcp: true})
	e.set(func() { e.authError = "The authtoken you specified is not valid. [TG_107]" })
	ra := startAgent(t, baseConfig(t, e, "tcp", config.Endpoint{Name: config.CommandLineEndpoint, Proto: "http", Upstream: "8080"}))
	err := ra.waitDone(t)
	var ce *codes.Error
	if !errors.As(err, &ce) || ce.Code != codes.AuthtokenInvalid || ce.Message != "The authtoken you specified is not valid." {
		t.Fatalf("Run = %#v, want *codes.Error TG_107", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error leaks the authtoken: %v", err)
	}
	if auths, _, _ := e.snapshot(); len(auths) != 1 || ra.bo.next.Load() != 0 {
		t.Fatalf("%d auths, %d backoffs: a permanent error must not be retried", len(auths), ra.bo.next.Load())
	}
}

func TestAgentRetryableAuthError(t *testing.T) {
	e := newFakeEdge(t, edgeOpts{tcp: true})
	e.set(func() { e.authError = "The edge is shutting down. [TG_151]" })
	ra := startAgent(t, baseConfig(t, e, "tcp"))
	waitFor(t, "three attempts", func() bool { a, _, _ := e.snapshot(); return len(a) >= 3 })
	e.set(func() { e.authError = "" })
	ra.waitReady(t) // no endpoints: ready right after Auth
	if ra.bo.next.Load() < 2 {
		t.Fatalf("backoff used %d times", ra.bo.next.Load())
	}
}

func TestAgentBindRefused(t *testing.T) {
	e := newFakeEdge(t, edgeOpts{tcp: true})
	e.set(func() { e.bindError = "This credential's bind ACL does not allow web.example.com. [TG_619]" })
	ra := startAgent(t, baseConfig(t, e, "tcp", config.Endpoint{Name: "web", Proto: "http", Upstream: "8080"}))
	err := ra.waitDone(t)
	var ce *codes.Error
	if !errors.As(err, &ce) || ce.Code != codes.BindACL || !strings.HasPrefix(ce.Message, `Endpoint "web": This credential`) {
		t.Fatalf("Run = %v, want TG_619 naming the endpoint", err)
	}
	select {
	case <-ra.Ready():
		t.Fatal("Ready closed although the bind failed")
	default:
	}
}

func TestAgentStopTunnel(t *testing.T) {
	e := newFakeEdge(t, edgeOpts{tcp: true})
	ra := startAgent(t, baseConfig(t, e, "tcp",
		config.Endpoint{Name: "a", Proto: "tcp", Upstream: "1"},
		config.Endpoint{Name: "b", Proto: "tcp", Upstream: "2"}))
	sess := e.waitSession(t)
	ra.waitReady(t)
	eps := ra.Endpoints()
	ctx := context.Background()

	if err := sess.StopTunnel(ctx, eps[0].BindID, "Endpoint removed by an administrator.", "TG_151"); err != nil {
		t.Fatal(err)
	}
	ev := ra.waitEvent(t, EventEndpointStopped)
	if ev.Endpoint != "a" || ev.Code != "TG_151" || ev.Message != "Endpoint removed by an administrator." {
		t.Fatalf("event = %+v", ev)
	}
	if st := ra.Endpoints()[0]; st.State != StateStopped || st.StopCode != "TG_151" {
		t.Fatalf("endpoint a = %+v", st)
	}
	// Traffic for the stopped endpoint is refused; the other still runs.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := sess.OpenProxy(pctx, &tunnel.ProxyHeader{ID: eps[0].BindID})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = st.Write([]byte("x"))
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, _ := st.Read(make([]byte, 1)); n != 0 {
		t.Fatal("stopped endpoint forwarded a connection")
	}
	st.Close()

	if err := sess.StopTunnel(ctx, eps[1].BindID, "Quota exceeded.", "TG_108"); err != nil {
		t.Fatal(err)
	}
	err = ra.waitDone(t)
	var ce *codes.Error
	if !errors.As(err, &ce) || ce.Code != "TG_108" || ce.Message != "Quota exceeded." {
		t.Fatalf("Run = %v, want the last stop's message and code", err)
	}
}

func TestAgentStopAndRestart(t *testing.T) {
	e := newFakeEdge(t, edgeOpts{tcp: true})
	ra := startAgent(t, baseConfig(t, e, "tcp", config.Endpoint{Name: "web", Proto: "http", Upstream: "8080"}))
	sess := e.waitSession(t)
	ra.waitReady(t)
	url := ra.Endpoints()[0].PublicURL
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := sess.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	ra.waitEvent(t, EventRestartRequested)
	sess = e.waitSession(t)
	ra.waitEvent(t, EventConnected)
	auths, binds, _ := e.snapshot()
	if auths[1].ClientID != "" || auths[1].Extra.Cookie != "" {
		t.Fatalf("after Restart: ClientId %q Cookie %q; want a new session", auths[1].ClientID, auths[1].Extra.Cookie)
	}
	if binds[1].Extra.Token != "token-web" || ra.Endpoints()[0].PublicURL != url {
		t.Fatalf("after Restart: bind token %q url %q", binds[1].Extra.Token, ra.Endpoints()[0].PublicURL)
	}

	if err := sess.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := ra.waitDone(t); err != nil {
		t.Fatalf("Run after Stop = %v, want nil", err)
	}
}

// startFallenBackAgent starts a --transport auto agent with one HTTP
// endpoint against a fake edge whose TCP is refused until tcpWorks is set:
// the agent falls back to QUIC and tries TCP again every 20 ms.
func startFallenBackAgent(t *testing.T) (*fakeEdge, *runningAgent, *atomic.Bool) {
	t.Helper()
	e := newFakeEdge(t, edgeOpts{tcp: true, quic: true})
	tcpWorks := new(atomic.Bool)
	cfg := baseConfig(t, e, "auto", config.Endpoint{Name: "web", Proto: "http", Upstream: helloUpstream(t)})
	a := startAgent(t, cfg, func(a *Agent) {
		a.fallbackDelay = 50 * time.Millisecond
		a.preferredRetry = 20 * time.Millisecond
		realDial := a.dial
		a.dial = func(ctx context.Context, transport, addr string) (tunnel.Mux, error) {
			if transport == config.TransportTCP && !tcpWorks.Load() {
				return nil, errors.New("connection refused")
			}
			return realDial(ctx, transport, addr)
		}
	})
	return e, a, tcpWorks
}

func TestAgentAutoTransport(t *testing.T) {
	t.Run("both answer", func(t *testing.T) {
		e := newFakeEdge(t, edgeOpts{tcp: true, quic: true})
		ra := startAgent(t, baseConfig(t, e, "auto"))
		ra.waitReady(t)
		if got := ra.Transport(); got != AutoFirst {
			t.Fatalf("transport = %q, want %q", got, AutoFirst)
		}
	})
	t.Run("udp gets no answer", func(t *testing.T) {
		e := newFakeEdge(t, edgeOpts{tcp: true, blackhole: true})
		a := startAgent(t, baseConfig(t, e, "auto"), func(a *Agent) { a.fallbackDelay = 50 * time.Millisecond })
		a.waitReady(t)
		if got := a.Transport(); got != "tcp" {
			t.Fatalf("transport = %q, want tcp", got)
		}
		if auths, _, _ := e.snapshot(); len(auths) != 1 {
			t.Fatalf("%d auths, want 1", len(auths))
		}
	})
	t.Run("tcp gets no answer", func(t *testing.T) {
		e := newFakeEdge(t, edgeOpts{tcp: true, quic: true})
		a := startAgent(t, baseConfig(t, e, "auto"), func(a *Agent) {
			a.fallbackDelay = 50 * time.Millisecond
			realDial := a.dial
			a.dial = func(ctx context.Context, transport, addr string) (tunnel.Mux, error) {
				if transport == config.TransportTCP { // a firewall that drops TCP: no answer at all
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return realDial(ctx, transport, addr)
			}
		})
		a.waitReady(t)
		if got := a.Transport(); got != "quic" {
			t.Fatalf("transport = %q, want quic", got)
		}
	})
	t.Run("returns to tcp once it answers", func(t *testing.T) {
		// TCP was refused when the agent (re)connected, as while an edge
		// restarts: the agent falls back to QUIC, then must move back to
		// TCP once TCP works, keeping its endpoint's URL.
		e, a, tcpWorks := startFallenBackAgent(t)
		a.waitReady(t)
		if got := a.Transport(); got != "quic" {
			t.Fatalf("transport = %q, want quic while tcp is refused", got)
		}
		first := e.waitSession(t)
		tcpWorks.Store(true)
		waitFor(t, "the session to move to tcp", func() bool { return a.Transport() == "tcp" })
		s := e.waitSession(t)
		if s.Transport() != "tcp" {
			t.Fatalf("the new session is over %s", s.Transport())
		}
		waitFor(t, "the old quic session to close", func() bool {
			select {
			case <-first.Done():
				return true
			default:
				return false
			}
		})
		waitFor(t, "the endpoint online again", func() bool { return a.Endpoints()[0].State == StateOnline })
		_, binds, _ := e.snapshot()
		last := binds[len(binds)-1]
		if len(binds) != 2 || last.ID != "bind-1" || last.Extra.Token != "token-web" {
			t.Fatalf("%d binds, the last with id %q token %q; want 2, the re-bind with the first bind's id and token", len(binds), last.ID, last.Extra.Token)
		}
		if resp, body := proxyRequest(t, s, last.ID); resp.StatusCode != 200 || body != "hello from /hello" {
			t.Fatalf("through the tcp session: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("the edge retires the fallback session while the preferred one authenticates", func(t *testing.T) {
		// A real edge ends the resumed (old) session as the new one
		// authenticates, before it answers: the agent sees its QUIC session
		// end while its TCP session is still authenticating, and must keep
		// the TCP session, not cancel it and reconnect.
		e, a, tcpWorks := startFallenBackAgent(t)
		a.waitReady(t)
		first := e.waitSession(t)
		e.set(func() {
			e.onAuth = func(req *tunnel.Auth) {
				if req.ClientID != "" {
					_ = first.Close(errors.New("The agent reconnected; this older connection is closed. [TG_151]"))
					time.Sleep(200 * time.Millisecond)
				}
			}
		})
		tcpWorks.Store(true)
		s := e.waitSession(t)
		if s.Transport() != "tcp" {
			t.Fatalf("the new session is over %s", s.Transport())
		}
		waitFor(t, "the endpoint online over tcp", func() bool {
			return a.Transport() == "tcp" && a.Endpoints()[0].State == StateOnline
		})
		time.Sleep(300 * time.Millisecond) // a reconnect, if any, would have begun
		select {
		case <-s.Done():
			t.Fatal("the agent closed the session over the preferred transport that replaced its fallback session")
		default:
		}
		if auths, _, _ := e.snapshot(); len(auths) != 2 {
			t.Fatalf("%d Auths, want 2 (quic, then tcp): the agent reconnected after the move", len(auths))
		}
	})
	t.Run("permanent error ends the race", func(t *testing.T) {
		e := newFakeEdge(t, edgeOpts{tcp: true, quic: true})
		e.set(func() { e.authError = "Revoked. [TG_300]" })
		ra := startAgent(t, baseConfig(t, e, "auto"))
		err := ra.waitDone(t)
		var ce *codes.Error
		if !errors.As(err, &ce) || ce.Code != codes.CredentialRevoked {
			t.Fatalf("Run = %v", err)
		}
	})
}

func TestAgentBackoffOnDialFailure(t *testing.T) {
	e := newFakeEdge(t, edgeOpts{tcp: true})
	var mu sync.Mutex
	fails := 3
	ra := startAgent(t, baseConfig(t, e, "tcp"), func(a *Agent) {
		realDial := a.dial
		a.dial = func(ctx context.Context, transport, addr string) (tunnel.Mux, error) {
			mu.Lock()
			defer mu.Unlock()
			if fails > 0 {
				fails--
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
			}
			return realDial(ctx, transport, addr)
		}
	})
	ra.waitReady(t)
	bo := ra.bo
	waitFor(t, "backoff reset after the session came up", func() bool { return bo.reset.Load() == 1 })
	if bo.next.Load() != 3 {
		t.Fatalf("backoff Next %d, want 3", bo.next.Load())
	}
}

func TestAgentWebAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	a, err := New(Config{Authtoken: "x_y", ServerAddr: "127.0.0.1:1", WebAddr: ln.Addr().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(context.Background())
	var ce *codes.Error
	if !errors.As(err, &ce) || ce.Code != codes.ListenFailed || !IsUsageError(err) {
		t.Fatalf("Run = %v, want TG_9001", err)
	}
	if err := a.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run = %v", err)
	}
}

func TestNewValidation(t *testing.T) {
	ok := Config{Authtoken: "x_y", ServerAddr: "edge.example.com:4443"}
	tests := []struct {
		name string
		mut  func(*Config)
		code codes.Code
		msg  string
	}{
		{"no authtoken", func(c *Config) { c.Authtoken = "" }, codes.AuthtokenMissing, "add-authtoken"},
		{"no server", func(c *Config) { c.ServerAddr = "" }, codes.ConfigInvalid, "--server-addr"},
		{"bad server", func(c *Config) { c.ServerAddr = "edge.example.com" }, codes.ConfigInvalid, "HOST:PORT"},
		{"bad transport", func(c *Config) { c.Transport = "udp" }, codes.ConfigInvalid, "auto, quic or tcp"},
		{"bad region", func(c *Config) { c.Region = "mars" }, codes.ConfigInvalid, "unknown region"},
		{"bad web addr", func(c *Config) { c.WebAddr = "4040" }, codes.ConfigInvalid, "web address"},
		{"too many HA connections", func(c *Config) { c.HAConnections = 9 }, codes.ConfigInvalid, "use 1 to 8"},
		{"negative HA connections", func(c *Config) { c.HAConnections = -1 }, codes.ConfigInvalid, "use 1 to 8"},
		{"missing CA", func(c *Config) { c.RootCAFile = "/nonexistent/ca.pem" }, codes.CAUnreadable, "/nonexistent/ca.pem"},
		{"duplicate names", func(c *Config) {
			c.Endpoints = []config.Endpoint{{Name: "a", Proto: "tcp", Upstream: "1"}, {Name: "a", Proto: "tcp", Upstream: "2"}}
		}, codes.ConfigInvalid, "unique"},
		{"bad endpoint", func(c *Config) { c.Endpoints = []config.Endpoint{{Name: "a", Proto: "tcp", Upstream: "x"}} }, codes.ConfigInvalid, "upstream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mut(&c)
			_, err := New(c, nil)
			var ce *codes.Error
			if !errors.As(err, &ce) || ce.Code != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("New = %v, want %s containing %q", err, tt.code, tt.msg)
			}
		})
	}
	// A file that is not PEM.
	bad := t.TempDir() + "/bad.pem"
	_ = writeFile(bad, "not a certificate")
	if _, err := New(Config{Authtoken: "x_y", ServerAddr: "e:1", RootCAFile: bad}, nil); !IsUsageError(err) || !strings.Contains(err.Error(), "TG_9003") {
		t.Fatalf("non-PEM CA: %v", err)
	}
	if _, err := New(Config{Authtoken: "x_y", ServerAddr: "e:1", WebAddr: "false"}, nil); err != nil {
		t.Fatalf("web addr false: %v", err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func TestAgentRegionRedirect(t *testing.T) {
	eu := newFakeEdge(t, edgeOpts{tcp: true})
	us := newFakeEdge(t, edgeOpts{tcp: true})
	us.set(func() {
		us.region = "us"
		us.connect = []tunnel.ConnectAddress{{Region: "us", ServerAddr: us.addr}, {Region: "eu", ServerAddr: eu.addr}}
	})
	cfg := baseConfig(t, us, "tcp", config.Endpoint{Name: "web", Proto: "http", Upstream: "8080"})
	cfg.Region = "eu"
	ra := startAgent(t, cfg)
	ra.waitReady(t)
	if st := ra.Status(); st.ServerAddr != eu.addr || st.Region != "eu" {
		t.Fatalf("status = %+v, want the eu edge %s", st, eu.addr)
	}
	usAuths, usBinds, _ := us.snapshot()
	euAuths, euBinds, _ := eu.snapshot()
	if len(usAuths) != 1 || len(usBinds) != 0 || len(euAuths) != 1 || len(euBinds) != 1 {
		t.Fatalf("us: %d auths %d binds; eu: %d auths %d binds", len(usAuths), len(usBinds), len(euAuths), len(euBinds))
	}
}

// TestEdgeGoingAwayReconnectsAtOnce: an edge that drains for a restart
// closes the session with ServerSession.GoAway; the agent reconnects
// without consulting its backoff (a plain drop waits a backoff delay, see
// TestReconnect...), on both transports.
func TestEdgeGoingAwayReconnectsAtOnce(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			e := newFakeEdge(t, edgeOpts{tcp: true, quic: true})
			ra := startAgent(t, baseConfig(t, e, tr))
			ra.waitReady(t)
			first := e.waitSession(t)
			ra.waitEvent(t, EventConnected)
			if err := first.GoAway("the edge is restarting"); err != nil {
				t.Fatal(err)
			}
			ev := ra.waitEvent(t, EventDisconnected)
			if !errors.Is(ev.Err, tunnel.ErrGoingAway) || ev.Delay != 0 {
				t.Fatalf("disconnect event %+v: want ErrGoingAway and no delay", ev)
			}
			e.waitSession(t)
			ra.waitEvent(t, EventConnected)
			if n := ra.bo.next.Load(); n != 0 {
				t.Fatalf("backoff Next called %d times for a going-away edge, want 0", n)
			}
		})
	}
}
