package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"go.uber.org/zap"
)

// Forwarding limits.
const (
	// copyBufferSize is the buffer every copy starts with; a copy whose
	// read fills it is moving bulk data and switches to bulkBufferSize,
	// which cuts the reads, stream frames and window updates per byte
	// (CPU-bound on loopback at 32 KiB), until a read returns less than
	// copyBufferSize. Idle and request/response connections hold the
	// small one.
	copyBufferSize     = 32 << 10
	bulkBufferSize     = 256 << 10
	upstreamDialLimit  = 10 * time.Second
	badGatewayDrainMax = 1 << 20
	badGatewayDrainFor = 2 * time.Second
	// warnEvery bounds "upstream unreachable" warnings per endpoint; the
	// ones in between go to debug and are counted in the next warning.
	warnEvery = 10 * time.Second
)

// halfConn is a connection whose send side can be closed on its own:
// tunnel streams, *net.TCPConn and *tls.Conn.
type halfConn interface {
	net.Conn
	CloseWrite() error
}

// bufPool and bulkPool hold the copy buffers (*[copyBufferSize]byte and
// *[bulkBufferSize]byte: one allocation each) shared by every forwarded
// connection.
var (
	bufPool  = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}
	bulkPool = sync.Pool{New: func() any { return new([bulkBufferSize]byte) }}
)

// counters are an endpoint's forwarding metrics.
type counters struct {
	connsTotal atomic.Int64
	connsOpen  atomic.Int64
	bytesIn    atomic.Int64
	bytesOut   atomic.Int64
}

// forwarder joins proxy streams to one endpoint's upstream.
type forwarder struct {
	spec    *config.EndpointSpec
	log     *zap.Logger
	metrics *counters
	// dial opens the upstream; tests replace it. nil = dialUpstream.
	dial func(ctx context.Context, u config.Upstream, insecure bool) (halfConn, error)
	// rec records the HTTP exchanges (inspect.go); nil = not recorded.
	rec *captureRing

	lastWarn   atomic.Int64 // UnixNano of the last unreachable warning
	suppressed atomic.Int64 // warnings turned into debug logs since
}

// serve forwards one proxy stream and closes it. clientAddr is the public
// client's address from the proxy header (for logs).
func (f *forwarder) serve(ctx context.Context, s halfConn, clientAddr string) {
	f.metrics.connsTotal.Add(1)
	f.metrics.connsOpen.Add(1)
	defer f.metrics.connsOpen.Add(-1)

	up, err := f.dialer()(ctx, f.spec.Upstream, f.spec.UpstreamTLSInsecure)
	if err != nil {
		f.warnUnreachable(clientAddr, err)
		if f.spec.Kind == config.ProtoHTTP {
			if werr := writeBadGateway(s, f.spec.Upstream); werr == nil {
				_ = s.CloseWrite()
				drain(s)
			}
		}
		_ = s.Close()
		return
	}
	// When the agent stops, both ends close and join returns.
	stop := context.AfterFunc(ctx, func() {
		_ = s.Close()
		_ = up.Close()
	})
	defer stop()
	var in, out int64
	if f.rec != nil {
		tc := f.rec.newConn(f.spec.Name, clientAddr)
		reqTap, respTap := tc.taps()
		in, out = join(s, up, reqTap, respTap)
		tc.close(reqTap, respTap)
	} else {
		in, out = join(s, up, nil, nil)
	}
	f.metrics.bytesIn.Add(in)
	f.metrics.bytesOut.Add(out)
	if ce := f.log.Check(zap.DebugLevel, "connection closed"); ce != nil {
		ce.Write(zap.String("endpoint", f.spec.Name), zap.String("remote_addr", clientAddr),
			zap.Int64("bytes_in", in), zap.Int64("bytes_out", out))
	}
}

// dialer returns the function that opens the upstream.
func (f *forwarder) dialer() func(ctx context.Context, u config.Upstream, insecure bool) (halfConn, error) {
	if f.dial == nil {
		return dialUpstream
	}
	return f.dial
}

// warnUnreachable logs a failed upstream dial: a warning at most every
// warnEvery per endpoint, debug otherwise.
func (f *forwarder) warnUnreachable(clientAddr string, err error) {
	now := time.Now().UnixNano()
	last := f.lastWarn.Load()
	level := zap.WarnLevel
	if now-last < int64(warnEvery) || !f.lastWarn.CompareAndSwap(last, now) {
		f.suppressed.Add(1)
		level = zap.DebugLevel
	}
	ce := f.log.Check(level, "upstream unreachable")
	if ce == nil {
		return
	}
	fields := []zap.Field{zap.String("endpoint", f.spec.Name), zap.String("upstream", f.spec.Upstream.String()),
		zap.String("remote_addr", clientAddr), zap.Error(err)}
	if level == zap.WarnLevel {
		fields = append(fields, zap.Int64("suppressed", f.suppressed.Swap(0)))
	}
	ce.Write(fields...)
}

// dialUpstream connects to u: TCP, then TLS with ServerName u.Host for an
// https upstream (handshake done here, so a failure is a dial failure).
func dialUpstream(ctx context.Context, u config.Upstream, insecure bool) (halfConn, error) {
	ctx, cancel := context.WithTimeout(ctx, upstreamDialLimit)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Addr())
	if err != nil {
		return nil, err
	}
	if !u.TLS() {
		if tc, ok := c.(*net.TCPConn); ok {
			return tc, nil
		}
		_ = c.Close()
		return nil, errors.New("upstream connection cannot half-close")
	}
	tc := tls.Client(c, &tls.Config{
		ServerName:         u.Host,
		InsecureSkipVerify: insecure, //nolint:gosec // opt-in for self-signed local upstreams
		MinVersion:         tls.VersionTLS12,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return tc, nil
}

// join copies bytes both ways between the proxy stream s and the upstream
// up until both directions end, with a pooled buffer per direction. When
// one side stops sending (EOF) the other side's send direction is closed
// (half-close), and copying the other way goes on. An error in either
// direction closes both connections. It returns the bytes copied s→up and
// up→s; both connections are closed when it returns. reqTap and respTap,
// when not nil, see the bytes of each direction (s→up, up→s) as they are
// forwarded.
func join(s, up halfConn, reqTap, respTap *msgTap) (in, out int64) {
	done := make(chan int64, 1)
	go joinCopy(up, s, reqTap, done)
	out, err := copyHalf(s, up, respTap)
	if err != nil {
		_ = s.Close()
		_ = up.Close()
	}
	in = <-done
	_ = s.Close()
	_ = up.Close()
	return in, out
}

// joinCopy is the second direction of join, in its own goroutine (named
// for stack traces). On an error it closes both ends so the other
// direction returns.
func joinCopy(dst, src halfConn, tap *msgTap, done chan<- int64) {
	n, err := copyHalf(dst, src, tap)
	if err != nil {
		_ = src.Close()
		_ = dst.Close()
	}
	done <- n
}

// copyHalf copies src to dst with a pooled buffer, a copyBufferSize one
// that becomes a bulkBufferSize one while reads fill it (see
// copyBufferSize); at EOF from src it half-closes dst. A non-nil tap gets
// each chunk just before it is written. It returns a nil error only for a clean
// EOF.
func copyHalf(dst, src halfConn, tap *msgTap) (int64, error) {
	small := bufPool.Get().(*[copyBufferSize]byte)
	var bulk *[bulkBufferSize]byte // while reads fill the small buffer
	defer func() {
		if bulk != nil {
			bulkPool.Put(bulk)
		} else {
			bufPool.Put(small)
		}
	}()
	buf := small[:]
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if tap != nil {
				// Before the write: the upstream must not answer a request
				// the request tap has not seen yet.
				tap.Write(buf[:nr])
			}
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
			switch {
			case bulk == nil && nr == len(buf):
				bufPool.Put(small)
				small, bulk = nil, bulkPool.Get().(*[bulkBufferSize]byte)
				buf = bulk[:]
			case bulk != nil && nr < copyBufferSize:
				// The burst is over: wait for the next one holding a
				// small buffer.
				bulkPool.Put(bulk)
				small, bulk = bufPool.Get().(*[copyBufferSize]byte), nil
				buf = small[:]
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return n, dst.CloseWrite()
			}
			return n, rerr
		}
	}
}

// writeBadGateway writes a complete HTTP/1.1 502 response saying the
// agent could not reach upstream, with code TG_8012 in the body and in the
// Tollgate-Error-Code header, and Connection: close.
func writeBadGateway(w io.Writer, upstream config.Upstream) error {
	body := "Tollgate: the agent could not reach the upstream " + upstream.String() + ".\n\n" +
		"The endpoint is online, but nothing answered at " + upstream.Addr() + " on the agent's machine.\n" +
		"Start the service there, or restart the agent with the right upstream.\n\n" +
		string(codes.UpstreamFailed) + "\n"
	head := "HTTP/1.1 502 Bad Gateway\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Tollgate-Error-Code: " + string(codes.UpstreamFailed) + "\r\n" +
		"Cache-Control: no-store\r\n" +
		"Connection: close\r\n\r\n"
	_, err := io.WriteString(w, head+body)
	return err
}

// drain reads and discards what the peer still sends (the request we
// answered), bounded in bytes and time, so closing does not reset a
// response the peer has not read yet.
func drain(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(badGatewayDrainFor))
	_, _ = io.CopyN(io.Discard, c, badGatewayDrainMax)
}
