package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"golang.ngrok.com/ngrok/v2"
	"golang.ngrok.com/ngrok/v2/rpc"
)

// sdkToken is the authtoken the interop edge accepts.
const sdkToken = "2abcdefghijklmnopqrstuvwxyz_secretpart"

// sdkHandler is a minimal edge for the hosted platform's Go SDK.
type sdkHandler struct {
	edge  *sdkEdge
	sess  *ServerSession
	auths chan *Auth
}

func (h *sdkHandler) Auth(_ context.Context, req *Auth) *AuthResp {
	h.auths <- req
	if req.Extra.Authtoken.Reveal() != sdkToken {
		return &AuthResp{Error: codeError(codes.AuthtokenInvalid, "The authtoken you specified is invalid.")}
	}
	// EdgeID and RegionEdges are Tollgate's own: the SDK must ignore them.
	return &AuthResp{Extra: AuthRespExtra{Region: "eu", AgentSessionID: "ts_sdk", Version: "tollgate-test",
		EdgeID: "ed_sdk", RegionEdges: []RegionEdge{{EdgeID: "ed_sdk", ServerAddr: h.edge.addr}, {EdgeID: "ed_other", ServerAddr: "127.0.0.1:1"}}}}
}

func (h *sdkHandler) Bind(_ context.Context, req *Bind) *BindResp {
	o, err := DecodeHTTPOptions(req.Opts)
	if err != nil {
		return &BindResp{Error: codeError(codes.BindOption, err.Error())}
	}
	if len(o.Unsupported) > 0 {
		return &BindResp{Error: codeError(codes.BindOption, "unsupported: "+strings.Join(o.Unsupported, ","))}
	}
	resp := &BindResp{ID: "bind_sdk1", URL: o.URL, Proto: req.Proto, Extra: BindRespExtra{Token: "bt", TunnelID: "ep_1"}}
	h.edge.bound <- boundEndpoint{sess: h.sess, req: req, resp: resp}
	return resp
}

func (h *sdkHandler) Unbind(context.Context, *Unbind) *UnbindResp { return &UnbindResp{} }
func (h *sdkHandler) SrvInfo(context.Context) *SrvInfoResp {
	return &SrvInfoResp{Region: "eu", EdgeID: "ed_sdk", RegionEdges: []RegionEdge{{EdgeID: "ed_sdk", ServerAddr: h.edge.addr}}}
}

type boundEndpoint struct {
	sess *ServerSession
	req  *Bind
	resp *BindResp
}

// sdkEdge serves agent connections over TLS on 127.0.0.1:0 with
// ServerSessions.
type sdkEdge struct {
	addr  string
	bound chan boundEndpoint
	auths chan *Auth
	ended chan error
	cfg   ServerConfig
	wg    sync.WaitGroup
}

func startSDKEdge(t *testing.T, cfg ServerConfig) *sdkEdge {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &sdkEdge{addr: ln.Addr().String(), bound: make(chan boundEndpoint, 16), auths: make(chan *Auth, 64), ended: make(chan error, 64), cfg: cfg}
	ctx, cancel := context.WithCancel(context.Background())
	tc := TCPServerTLSConfig(serverTLS(t))
	e.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.wg.Go(func() {
				tconn := tls.Server(c, tc)
				hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
				err := tconn.HandshakeContext(hctx)
				hcancel()
				if err != nil {
					_ = c.Close()
					return
				}
				h := &sdkHandler{edge: e, auths: e.auths}
				h.sess = NewServerSession(NewMuxadoMux(tconn, true, MuxConfig{}), h, e.cfg)
				e.ended <- h.sess.Run(ctx)
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		cancel()
		e.wg.Wait()
	})
	return e
}

func newSDKAgent(t *testing.T, addr, token string, opts ...ngrok.AgentOption) ngrok.Agent {
	t.Helper()
	_, pool := testCert(t)
	opts = append([]ngrok.AgentOption{
		ngrok.WithAuthtoken(token),
		ngrok.WithAgentConnectURL(addr),
		ngrok.WithAgentConnectCAs(pool),
		ngrok.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)
	agent, err := ngrok.NewAgent(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Disconnect() })
	return agent
}

// TestSDKInterop runs the hosted platform's Go SDK against ServerSession:
// auth, bind with a URL, a proxy stream both ways with half-close,
// heartbeats both ways, and StopTunnel ending the SDK listener's Accept.
func TestSDKInterop(t *testing.T) {
	edge := startSDKEdge(t, ServerConfig{HeartbeatInterval: 50 * time.Millisecond, HeartbeatTolerance: 5 * time.Second, MinHeartbeatInterval: -1})
	var sdkBeats atomic.Int32 // heartbeats the SDK sent and we echoed
	agent := newSDKAgent(t, edge.addr, sdkToken, ngrok.WithHeartbeatInterval(50*time.Millisecond),
		ngrok.WithEventHandler(func(e ngrok.Event) {
			if _, ok := e.(*ngrok.EventAgentHeartbeatReceived); ok {
				sdkBeats.Add(1)
			}
		}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ln, err := agent.Listen(ctx, ngrok.WithURL("https://app.example.test"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ln.URL().String(); got != "https://app.example.test" {
		t.Fatalf("listener URL %q", got)
	}
	auth := <-edge.auths
	if auth.Extra.ClientType != "ngrok-go" || auth.Extra.Authtoken.Reveal() != sdkToken || len(auth.Version) == 0 {
		t.Fatalf("auth as received: %+v", auth.Extra)
	}
	var b boundEndpoint
	select {
	case b = <-edge.bound:
	case <-ctx.Done():
		t.Fatal("no bind")
	}
	if b.req.Proto != "https" || b.req.ID != "" {
		t.Fatalf("bind as received: %+v", b.req)
	}
	stop, restart, update := b.sess.Capabilities()
	if stop || restart || update {
		t.Fatalf("SDK without handlers said it supports commands: %v %v %v", stop, restart, update)
	}

	// The agent side: echo upper-cased bytes until the edge half-closes.
	type accepted struct {
		remote string
		err    error
	}
	acc := make(chan accepted, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			acc <- accepted{err: err}
			return
		}
		defer conn.Close()
		acc <- accepted{remote: conn.RemoteAddr().String()}
		data, _ := io.ReadAll(conn)
		_, _ = conn.Write([]byte(strings.ToUpper(string(data))))
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()

	st, err := b.sess.OpenProxy(ctx, &ProxyHeader{ID: b.resp.ID, ClientAddr: "203.0.113.5:41234", Proto: "https", EdgeType: "3"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Write([]byte("hello from the edge")); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-acc:
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.remote != "203.0.113.5:41234" {
			t.Fatalf("SDK conn remote addr %q", a.remote)
		}
	case <-ctx.Done():
		t.Fatal("the SDK listener got no connection")
	}
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	back, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if string(back) != "HELLO FROM THE EDGE" {
		t.Fatalf("got back %q", back)
	}

	// Heartbeats both ways: the SDK echoes ours, we echo its.
	waitFor(t, 10*time.Second, "edge heartbeat latency", func() bool { return b.sess.Latency() > 0 })
	waitFor(t, 10*time.Second, "SDK heartbeats echoed", func() bool { return sdkBeats.Load() >= 2 })

	// StopTunnel closes the SDK's listener.
	if err := b.sess.StopTunnel(ctx, b.resp.ID, "stopped by the test", codes.SessionStopped); err != nil {
		t.Fatal(err)
	}
	acceptErr := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		acceptErr <- err
	}()
	select {
	case err := <-acceptErr:
		if err == nil || !strings.Contains(err.Error(), "stopped by the test") {
			t.Fatalf("SDK Accept after StopTunnel: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("StopTunnel did not close the SDK listener")
	}
	select {
	case err := <-edge.ended:
		t.Fatalf("session ended early: %v", err)
	default:
	}
}

// TestSDKInteropAuthRefused checks that the SDK surfaces our refusal (it
// retries forever, so it runs under a deadline).
func TestSDKInteropAuthRefused(t *testing.T) {
	edge := startSDKEdge(t, ServerConfig{})
	agent := newSDKAgent(t, edge.addr, "2wrong_token")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := agent.Connect(ctx)
	if err == nil {
		t.Fatal("connected with a bad token")
	}
	if !strings.Contains(err.Error(), string(codes.AuthtokenInvalid)) {
		t.Fatalf("error does not carry our code: %v", err)
	}
	select {
	case err := <-edge.ended:
		if !errors.Is(err, ErrAuthRejected) {
			t.Fatalf("session ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end")
	}
}

// TestSDKInteropStop sends Stop to an SDK agent that registered an RPC
// handler: the capability is seen at Auth and the handler runs.
func TestSDKInteropStop(t *testing.T) {
	edge := startSDKEdge(t, ServerConfig{})
	methods := make(chan string, 4)
	agent := newSDKAgent(t, edge.addr, sdkToken, ngrok.WithRPCHandler(func(_ context.Context, _ ngrok.AgentSession, r rpc.Request) ([]byte, error) {
		methods <- r.Method()
		return nil, nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := agent.Listen(ctx, ngrok.WithURL("https://stop.example.test")); err != nil {
		t.Fatal(err)
	}
	b := <-edge.bound
	stop, restart, update := b.sess.Capabilities()
	if !stop || !restart || !update {
		t.Fatalf("capabilities %v %v %v", stop, restart, update)
	}
	if err := b.sess.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-methods:
		if m != rpc.StopAgentMethod {
			t.Fatalf("method %q", m)
		}
	case <-ctx.Done():
		t.Fatal("the SDK's handler was not called")
	}
}
