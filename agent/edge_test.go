package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testcert"

	"github.com/tollgate/tollgate/tunnel"
)

// testCA is a self-signed certificate for 127.0.0.1 and localhost.
type testCA struct {
	cert   tls.Certificate
	pool   *x509.CertPool
	pemBuf []byte
}

var (
	caOnce sync.Once
	ca     testCA
)

func getTestCA(t testing.TB) testCA {
	t.Helper()
	caOnce.Do(func() {
		p := testcert.New("127.0.0.1", "localhost")
		ca = testCA{cert: p.Cert, pool: p.Pool, pemBuf: p.CertPEM}
	})
	return ca
}

// caFile writes the test CA to a PEM file and returns its path.
func caFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, getTestCA(t).pemBuf, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeEdge is a minimal edge built on package tunnel's server side. It
// records what agents send and lets tests drive sessions.
type fakeEdge struct {
	t    *testing.T
	addr string // TCP and UDP share the port

	mu        sync.Mutex
	auths     []tunnel.Auth
	binds     []tunnel.Bind
	unbinds   []string
	sessions  []*tunnel.ServerSession
	authError string // answered to every Auth when set
	bindError string // answered to every Bind when set
	region    string
	connect   []tunnel.ConnectAddress
	n         int
	id        string              // AuthRespExtra.EdgeID; "" = an edge that does not name itself
	listed    []tunnel.RegionEdge // AuthRespExtra.RegionEdges
	kill      func()              // closes the listeners and every session, as a killed edge
	tcpHost   string              // host of TCP endpoints' URLs; "" = tcp.tollgate.localhost
	onAuth    func(*tunnel.Auth)  // called before each Auth is answered, without the lock

	newSession chan *tunnel.ServerSession
	wg         sync.WaitGroup
}

type edgeOpts struct {
	tcp       bool
	quic      bool // a QUIC listener; false with blackholeUDP = UDP gets no answer
	blackhole bool // bind the UDP port but never answer
}

func newFakeEdge(t *testing.T, o edgeOpts) *fakeEdge {
	t.Helper()
	e := &fakeEdge{t: t, newSession: make(chan *tunnel.ServerSession, 64), region: "eu"}
	ctx, cancel := context.WithCancel(context.Background())
	cert := getTestCA(t).cert
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}

	var ln net.Listener
	var udp net.PacketConn
	var err error
	for i := 0; i < 20; i++ { // find a port free for both TCP and UDP
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if !o.quic && !o.blackhole {
			break
		}
		udp, err = net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			break
		}
		ln.Close()
		ln = nil
	}
	if ln == nil {
		t.Fatal("no port free for both TCP and UDP")
	}
	e.addr = ln.Addr().String()
	var ql *tunnel.QUICListener
	var killOnce sync.Once
	e.kill = func() {
		killOnce.Do(func() {
			cancel()
			ln.Close()
			if ql != nil {
				ql.Close()
			}
			if udp != nil {
				udp.Close()
			}
			e.mu.Lock()
			for _, s := range e.sessions {
				_ = s.Close(errors.New("fake edge killed"))
			}
			e.mu.Unlock()
		})
	}
	t.Cleanup(func() {
		e.kill()
		e.wg.Wait()
	})
	if o.tcp {
		tc := tunnel.TCPServerTLSConfig(serverTLS)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				tconn := tls.Server(c, tc)
				hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
				err = tconn.HandshakeContext(hctx)
				hcancel()
				if err != nil {
					_ = c.Close()
					continue
				}
				e.serve(ctx, tunnel.NewMuxadoMux(tconn, true, tunnel.MuxConfig{}))
			}
		}()
	} else {
		ln.Close()
	}
	if o.quic {
		ql, err = tunnel.ListenQUIC(udp, serverTLS, tunnel.QUICListenerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			for {
				m, err := ql.Accept(ctx)
				if err != nil {
					return
				}
				e.serve(ctx, m)
			}
		}()
	}
	return e
}

func (e *fakeEdge) serve(ctx context.Context, m tunnel.Mux) {
	h := &edgeHandler{e: e}
	s := tunnel.NewServerSession(m, h, tunnel.ServerConfig{})
	h.sess = s
	e.mu.Lock()
	e.sessions = append(e.sessions, s)
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		_ = s.Run(ctx)
	}()
}

// waitSession returns the next session that authenticated successfully.
func (e *fakeEdge) waitSession(t *testing.T) *tunnel.ServerSession {
	t.Helper()
	select {
	case s := <-e.newSession:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("no agent session within 20s")
		return nil
	}
}

// set changes the edge's settings under its lock.
func (e *fakeEdge) set(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f()
}

func (e *fakeEdge) snapshot() (auths []tunnel.Auth, binds []tunnel.Bind, unbinds []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append(auths, e.auths...), append(binds, e.binds...), append(unbinds, e.unbinds...)
}

type edgeHandler struct {
	e    *fakeEdge
	sess *tunnel.ServerSession
}

func (h *edgeHandler) Auth(ctx context.Context, req *tunnel.Auth) *tunnel.AuthResp {
	e := h.e
	e.mu.Lock()
	onAuth := e.onAuth
	e.mu.Unlock()
	if onAuth != nil {
		onAuth(req)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.auths = append(e.auths, *req)
	if e.authError != "" {
		return &tunnel.AuthResp{Error: e.authError}
	}
	e.n++
	clientID := req.ClientID
	if clientID == "" {
		clientID = "client-" + strconv.Itoa(e.n)
	}
	resp := &tunnel.AuthResp{
		ClientID: clientID,
		Extra: tunnel.AuthRespExtra{
			Region: e.region, Cookie: "cookie-" + strconv.Itoa(e.n), AgentSessionID: "ts_" + strconv.Itoa(e.n),
			ConnectAddresses: e.connect,
			EdgeID:           e.id, RegionEdges: e.listed,
		},
	}
	// Hand the session to the test once the session has marked itself
	// authenticated (right after this returns); poll with a deadline.
	e.wg.Add(1)
	go func(s *tunnel.ServerSession) {
		defer e.wg.Done()
		deadline := time.Now().Add(5 * time.Second)
		for !s.Authenticated() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if s.Authenticated() {
			select {
			case e.newSession <- s:
			default: // the test is not watching sessions
			}
		}
	}(h.sess)
	return resp
}

func (h *edgeHandler) Bind(ctx context.Context, req *tunnel.Bind) *tunnel.BindResp {
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.binds = append(e.binds, *req)
	if e.bindError != "" {
		return &tunnel.BindResp{Error: e.bindError}
	}
	url := "https://" + req.Extra.Name + ".tollgate.localhost:8443"
	if req.Proto == "tcp" {
		host := e.tcpHost
		if host == "" {
			host = "tcp.tollgate.localhost"
		}
		url = "tcp://" + req.Extra.Name + "." + host + ":20001"
	}
	id := req.ID
	if id == "" {
		id = fmt.Sprintf("bind-%d", len(e.binds))
	}
	return &tunnel.BindResp{ID: id, URL: url, Proto: req.Proto,
		Extra: tunnel.BindRespExtra{Token: "token-" + req.Extra.Name, TunnelID: "ep_" + req.Extra.Name}}
}

func (h *edgeHandler) Unbind(ctx context.Context, req *tunnel.Unbind) *tunnel.UnbindResp {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	h.e.unbinds = append(h.e.unbinds, req.ID)
	return &tunnel.UnbindResp{}
}

func (h *edgeHandler) SrvInfo(ctx context.Context) *tunnel.SrvInfoResp {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	return &tunnel.SrvInfoResp{Region: h.e.region, EdgeID: h.e.id, RegionEdges: h.e.listed}
}
