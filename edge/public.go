package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
)

// acceptPublicHTTPS accepts public HTTPS clients.
func (e *Edge) acceptPublicHTTPS(ctx context.Context) error {
	for {
		c, err := e.httpsLn.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		go e.handlePublicHTTPS(ctx, c)
	}
}

// tlsConfigForClient picks the tls.Config whose minimum version is the
// endpoint's (by SNI), or the edge default for unknown names.
func (e *Edge) tlsConfigForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	minV := e.defaultMinTLS
	if ep, ok := e.router.lookup(strings.ToLower(hello.ServerName)); ok {
		minV = ep.minTLS
	}
	return e.publicTLS[minV], nil
}

func (e *Edge) handlePublicHTTPS(ctx context.Context, c net.Conn) {
	tc := tls.Server(c, &tls.Config{GetConfigForClient: e.tlsConfigForClient})
	hctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		if ce := e.log.Check(zap.DebugLevel, "public TLS handshake failed"); ce != nil {
			ce.Write(zap.String("remote_addr", c.RemoteAddr().String()), zap.Error(err))
		}
		c.Close()
		return
	}
	st := tc.ConnectionState()
	e.proxy.ServeConn(ctx, tc, strings.ToLower(st.ServerName), st.NegotiatedProtocol)
}

// Resolve implements httpproxy.Resolver: the HTTPS endpoint bound at host.
func (e *Edge) Resolve(host string) (httpproxy.Upstream, bool) {
	ep, ok := e.router.lookup(host)
	if !ok || ep.proto != "https" {
		return nil, false
	}
	return ep, true
}

// httpRedirector serves the plain-HTTP listener: every request is redirected
// to the same URL on HTTPS.
type httpRedirector struct {
	srv *http.Server
}

func newHTTPRedirector(e *Edge) *httpRedirector {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		host, err := normalizeHost(host)
		if err != nil || host == "" {
			http.Error(w, "Bad Host header ["+string(config.CodeBadRequest)+"]", http.StatusBadRequest)
			return
		}
		target := e.publicHTTPSURL(host) + r.URL.RequestURI()
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
	})
	return &httpRedirector{srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(e.log.Named("http")),
	}}
}

func (r *httpRedirector) serve(ln net.Listener) error {
	err := r.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (r *httpRedirector) shutdown(ctx context.Context) error { return r.srv.Shutdown(ctx) }
