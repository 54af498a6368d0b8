package tunnel

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
)

// fakeHandler is an edge that accepts authtoken "good" and binds anything.
type fakeHandler struct {
	authCalls atomic.Int32
	unbinds   chan string
}

func (h *fakeHandler) Auth(_ context.Context, req *Auth) *AuthResp {
	h.authCalls.Add(1)
	if req.Extra.Authtoken.Reveal() != "good" {
		return &AuthResp{Error: codeError(codes.AuthtokenInvalid, "The authtoken is invalid.")}
	}
	return &AuthResp{Extra: AuthRespExtra{Region: "eu", AgentSessionID: "ts_test"}}
}

func (h *fakeHandler) Bind(_ context.Context, req *Bind) *BindResp {
	o, err := DecodeHTTPOptions(req.Opts)
	if err != nil {
		return &BindResp{Error: err.Error()}
	}
	return &BindResp{URL: o.URL, Extra: BindRespExtra{Token: "tok"}}
}

func (h *fakeHandler) Unbind(_ context.Context, req *Unbind) *UnbindResp {
	if h.unbinds != nil {
		h.unbinds <- req.ID
	}
	return &UnbindResp{}
}

func (h *fakeHandler) SrvInfo(context.Context) *SrvInfoResp { return &SrvInfoResp{Region: "eu"} }

// sessions is a running server and client session pair.
type sessions struct {
	server    *ServerSession
	client    *ClientSession
	serverErr chan error
	clientErr chan error
}

func startSessions(t *testing.T, tr string, h ServerHandler, scfg ServerConfig, ccfg ClientConfig) *sessions {
	t.Helper()
	cm, sm := muxPair(t, tr, MuxConfig{})
	s := &sessions{
		server:    NewServerSession(sm, h, scfg),
		client:    NewClientSession(cm, ccfg),
		serverErr: make(chan error, 1),
		clientErr: make(chan error, 1),
	}
	go func() { s.serverErr <- s.server.Run(context.Background()) }()
	go func() { s.clientErr <- s.client.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = s.client.Close()
		_ = s.server.Close(nil)
		<-s.serverErr
		<-s.clientErr
	})
	return s
}

// wait returns the next error from ch or fails after d.
func wait(t *testing.T, ch <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
		return nil
	}
}

func TestSessionAuthBindProxy(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ctx := testCtx(t, 20*time.Second)
			h := &fakeHandler{unbinds: make(chan string, 1)}
			s := startSessions(t, tr, h, ServerConfig{}, ClientConfig{})

			ar, err := s.client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}})
			if err != nil {
				t.Fatal(err)
			}
			if ar.ClientID != "ts_test" || ar.Version != ProtocolVersion || ar.Extra.Region != "eu" {
				t.Fatalf("auth response %+v", ar)
			}
			if !s.server.Authenticated() {
				t.Fatal("server not authenticated")
			}
			info, err := s.client.SrvInfo(ctx)
			if err != nil || info.Region != "eu" {
				t.Fatalf("srvinfo %+v %v", info, err)
			}
			br, err := s.client.Bind(ctx, &Bind{Proto: "https", Opts: []byte(`{"URL":"https://app.example.test"}`)})
			if err != nil {
				t.Fatal(err)
			}
			if br.URL != "https://app.example.test" || br.Proto != "https" || br.ID == "" {
				t.Fatalf("bind response %+v", br)
			}

			hdr := &ProxyHeader{ID: br.ID, ClientAddr: "203.0.113.9:4000", Proto: "https", EdgeType: "3"}
			pst, err := s.server.OpenProxy(ctx, hdr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pst.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			_ = pst.CloseWrite()
			gotHdr, ast, err := s.client.AcceptProxy(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if *gotHdr != *hdr {
				t.Fatalf("header %+v", gotHdr)
			}
			req, err := io.ReadAll(ast)
			if err != nil || string(req) != "GET / HTTP/1.1\r\n\r\n" {
				t.Fatalf("request %q %v", req, err)
			}
			if _, err := ast.Write([]byte("HTTP/1.1 200 OK\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			_ = ast.CloseWrite()
			resp, err := io.ReadAll(pst)
			if err != nil || string(resp) != "HTTP/1.1 200 OK\r\n\r\n" {
				t.Fatalf("response %q %v", resp, err)
			}
			_ = pst.Close()
			_ = ast.Close()

			if err := s.client.Unbind(ctx, br.ID); err != nil {
				t.Fatal(err)
			}
			if id := <-h.unbinds; id != br.ID {
				t.Fatalf("unbind %q", id)
			}
		})
	}
}

func TestSessionRPCBeforeAuth(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ctx := testCtx(t, 20*time.Second)
			s := startSessions(t, tr, &fakeHandler{}, ServerConfig{}, ClientConfig{})
			_, err := s.client.Bind(ctx, &Bind{Proto: "https"})
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != string(codes.NotAuthenticated) || !errors.Is(err, ErrNotAuthenticated) {
				t.Fatalf("bind before auth: %v", err)
			}
			if _, err := s.server.OpenProxy(ctx, &ProxyHeader{}); !errors.Is(err, ErrNotAuthenticated) {
				t.Fatalf("open proxy before auth: %v", err)
			}
			// The session survives and authenticates.
			if _, err := s.client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.client.Bind(ctx, &Bind{Proto: "https"}); err != nil {
				t.Fatal(err)
			}
			// A second Auth is refused without ending the session.
			if _, err := s.client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err == nil {
				t.Fatal("second auth accepted")
			}
			if _, err := s.client.SrvInfo(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSessionAuthFailureCloses(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ctx := testCtx(t, 20*time.Second)
			s := startSessions(t, tr, &fakeHandler{}, ServerConfig{}, ClientConfig{})
			_, err := s.client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "bad"}})
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != string(codes.AuthtokenInvalid) || !IsPermanent(err) {
				t.Fatalf("auth: %v", err)
			}
			if err := wait(t, s.serverErr, 10*time.Second, "server end"); !errors.Is(err, ErrAuthRejected) || !IsPermanent(err) {
				t.Fatalf("server ended with %v", err)
			}
			if err := wait(t, s.clientErr, 10*time.Second, "client end"); err == nil {
				t.Fatal("client ended without error")
			}
			s.serverErr <- nil // for the cleanup
			s.clientErr <- nil
		})
	}
}

func TestSessionHeartbeatMinimum(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	s := startSessions(t, "tcp", &fakeHandler{}, ServerConfig{}, ClientConfig{HeartbeatInterval: 10 * time.Millisecond})
	_, err := s.client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}})
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != string(codes.HeartbeatInterval) || !IsPermanent(err) {
		t.Fatalf("auth: %v", err)
	}
}

func TestSessionAuthTimeout(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s := startSessions(t, tr, &fakeHandler{}, ServerConfig{AuthTimeout: 100 * time.Millisecond}, ClientConfig{})
			if err := wait(t, s.serverErr, 10*time.Second, "server end"); !errors.Is(err, ErrAuthTimeout) {
				t.Fatalf("server ended with %v", err)
			}
			s.serverErr <- nil
		})
	}
}

// silentPeer accepts streams on m and never answers them, like an agent
// whose process is frozen.
func silentPeer(t *testing.T, m Mux) {
	go func() {
		for {
			_, st, err := m.AcceptStream(context.Background())
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = st.Close() })
		}
	}()
}

func TestServerHeartbeatTimeout(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			cm, sm := muxPair(t, tr, MuxConfig{})
			silentPeer(t, cm)
			s := NewServerSession(sm, &fakeHandler{}, ServerConfig{HeartbeatInterval: 50 * time.Millisecond, HeartbeatTolerance: 100 * time.Millisecond, AuthTimeout: time.Minute})
			errc := make(chan error, 1)
			go func() { errc <- s.Run(context.Background()) }()
			if err := wait(t, errc, 10*time.Second, "server end"); !errors.Is(err, ErrHeartbeatTimeout) {
				t.Fatalf("server ended with %v", err)
			}
			select {
			case <-s.Done():
			default:
				t.Fatal("Done not closed")
			}
		})
	}
}

func TestClientHeartbeatTimeout(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			cm, sm := muxPair(t, tr, MuxConfig{})
			silentPeer(t, sm)
			c := NewClientSession(cm, ClientConfig{HeartbeatInterval: 50 * time.Millisecond, HeartbeatTolerance: 100 * time.Millisecond})
			errc := make(chan error, 1)
			go func() { errc <- c.Run(context.Background()) }()
			if err := wait(t, errc, 10*time.Second, "client end"); !errors.Is(err, ErrHeartbeatTimeout) {
				t.Fatalf("client ended with %v", err)
			}
		})
	}
}

func TestSessionHeartbeatLatency(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s := startSessions(t, tr, &fakeHandler{},
				ServerConfig{HeartbeatInterval: 20 * time.Millisecond, HeartbeatTolerance: time.Second},
				ClientConfig{HeartbeatInterval: 20 * time.Millisecond, HeartbeatTolerance: time.Second})
			waitFor(t, 10*time.Second, "latency on both sides", func() bool {
				return s.server.Latency() > 0 && s.client.Latency() > 0
			})
			// Several beats pass and the session stays up.
			first := s.server.Latency()
			waitFor(t, 10*time.Second, "another beat", func() bool { return s.server.Latency() != first })
			select {
			case err := <-s.serverErr:
				t.Fatalf("server ended: %v", err)
			default:
			}
		})
	}
}

func TestSessionStopTunnel(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ctx := testCtx(t, 20*time.Second)
			got := make(chan StopTunnel, 1)
			s := startSessions(t, tr, &fakeHandler{}, ServerConfig{}, ClientConfig{OnStopTunnel: func(st StopTunnel) { got <- st }})
			if err := s.server.StopTunnel(ctx, "b1", "x", codes.SessionStopped); !errors.Is(err, ErrNotAuthenticated) {
				t.Fatalf("before auth: %v", err)
			}
			if _, err := s.client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
				t.Fatal(err)
			}
			if err := s.server.StopTunnel(ctx, "b1", "endpoint removed by an operator", codes.SessionStopped); err != nil {
				t.Fatal(err)
			}
			select {
			case st := <-got:
				if st.ID != "b1" || st.Message != "endpoint removed by an operator" || st.ErrorCode != string(codes.SessionStopped) {
					t.Fatalf("got %+v", st)
				}
			case <-ctx.Done():
				t.Fatal("OnStopTunnel not called")
			}
		})
	}
}

func TestSessionStopRestart(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ctx := testCtx(t, 20*time.Second)
			s := startSessions(t, tr, &fakeHandler{}, ServerConfig{}, ClientConfig{
				OnStop:    func() error { return nil },
				OnRestart: func() error { return errors.New("not now") },
			})
			if _, err := s.client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
				t.Fatal(err)
			}
			stop, restart, update := s.server.Capabilities()
			if !stop || !restart || update {
				t.Fatalf("capabilities %v %v %v", stop, restart, update)
			}
			if err := s.server.Update(ctx, "", false); !errors.Is(err, ErrUnsupported) {
				t.Fatalf("update: %v", err)
			}
			var re *RemoteError
			if err := s.server.Restart(ctx); !errors.As(err, &re) || re.Message != "not now" {
				t.Fatalf("restart: %v", err)
			}
			if err := s.server.Stop(ctx); err != nil {
				t.Fatalf("stop: %v", err)
			}
			if err := wait(t, s.clientErr, 10*time.Second, "client end"); !errors.Is(err, ErrStopRequested) || !IsPermanent(err) {
				t.Fatalf("client ended with %v", err)
			}
			s.clientErr <- nil
		})
	}
}

func TestSessionStopUnsupported(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	s := startSessions(t, "tcp", &fakeHandler{}, ServerConfig{}, ClientConfig{})
	if err := s.server.Stop(ctx); !errors.Is(err, ErrNotAuthenticated) {
		t.Fatalf("before auth: %v", err)
	}
	if _, err := s.client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.server.Stop(ctx); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("stop: %v", err)
	}
}

func TestSessionUnsupportedRPCs(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	s := startSessions(t, "tcp", &fakeHandler{}, ServerConfig{}, ClientConfig{})
	if _, err := s.client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
		t.Fatal(err)
	}
	var lr StartTunnelWithLabelResp
	if err := roundTrip(ctx, s.client.mux, StreamStartLabeled, &StartTunnelWithLabel{Labels: map[string]string{"a": "b"}}, &lr, 0); err != nil {
		t.Fatal(err)
	}
	if ParseRemoteError(lr.Error).Code != string(codes.BindOption) {
		t.Fatalf("labeled: %+v", lr)
	}
	var pr PatchTunnelStateResp
	if err := roundTrip(ctx, s.client.mux, StreamPatchTunnelState, &PatchTunnelState{TunnelID: "x"}, &pr, 0); err != nil {
		t.Fatal(err)
	}
	if pr.Error == "" {
		t.Fatal("patch accepted")
	}
	// A stream type only the edge may open is closed, and the session lives on.
	st, err := s.client.mux.OpenStream(ctx, StreamProxy)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = st.Write([]byte("junk"))
	if _, err := io.ReadAll(st); err != nil && !errors.Is(err, io.EOF) {
		t.Logf("refused stream: %v", err)
	}
	if _, err := s.client.SrvInfo(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSessionCloseAndCancel(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			check := goroutineBaseline(t)
			t.Run("session", func(t *testing.T) { // its cleanups close the listener before check
				cm, sm := muxPair(t, tr, MuxConfig{})
				server := NewServerSession(sm, &fakeHandler{}, ServerConfig{})
				client := NewClientSession(cm, ClientConfig{})
				ctx, cancel := context.WithCancel(context.Background())
				serr, cerr := make(chan error, 1), make(chan error, 1)
				go func() { serr <- server.Run(ctx) }()
				go func() { cerr <- client.Run(context.Background()) }()
				actx := testCtx(t, 10*time.Second)
				if _, err := client.Auth(actx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
					t.Fatal(err)
				}
				// Streams and heartbeats in flight when the session ends.
				pst, err := server.OpenProxy(actx, &ProxyHeader{ID: "x"})
				if err != nil {
					t.Fatal(err)
				}
				_, _ = pst.Write([]byte("hi"))
				if _, _, err := client.AcceptProxy(actx); err != nil {
					t.Fatal(err)
				}
				cancel()
				if err := wait(t, serr, 10*time.Second, "server end"); !errors.Is(err, context.Canceled) {
					t.Fatalf("server ended with %v", err)
				}
				if err := wait(t, cerr, 10*time.Second, "client end"); err == nil {
					t.Fatal("client ended without error")
				}
				if _, _, err := client.AcceptProxy(actx); !errors.Is(err, ErrClosed) {
					t.Fatalf("accept after end: %v", err)
				}
				if err := server.Run(actx); err == nil {
					t.Fatal("second Run accepted")
				}
				_ = client.Close()
				_ = server.Close(nil)
			})
			check()
		})
	}
}
