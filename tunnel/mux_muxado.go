package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.ngrok.com/muxado/v2"
)

// muxadoMux is a Mux over a muxado session on a TLS connection.
type muxadoMux struct {
	sess      muxado.Session
	transport net.Conn // what muxado writes to (the batcher over conn)
	local     net.Addr
	remote    net.Addr
	done      chan struct{} // closed when the transport is closed
	closing   atomic.Bool   // Close was called
	ours      bool          // TLS negotiated TCPALPN: the peer runs this package

	bytesRead    atomic.Uint64 // bytes read from the peer (liveness, heartbeat.go)
	bytesWritten atomic.Uint64 // bytes the connection took from us (liveness, frame sizes)
	sizer        *frameSizer   // DATA frame sizes (stream.go)
	life         lifeSignal    // wakes AwaitLife when bytes arrive (liveness.go)

	acceptOnce  sync.Once
	loopStarted atomic.Bool
	accepted    chan acceptResult // fed by acceptLoop, for cancellable waits

	streams streamServer // serveStreams's state (serve_muxado.go)

	// Between our own ends (ours): each stream's autotuned send window
	// below muxado's window (sendwindow.go); tune is false with
	// MuxConfig.fixedWindow.
	tune    bool
	window  int64
	windows sendWindows
}

type acceptResult struct {
	t   StreamType
	st  Stream
	err error
}

// NewMuxadoMux runs a muxado session over conn, normally a *tls.Conn whose
// handshake is complete: the edge is the server (server == true), the
// agent the client. It starts muxado's reader and writer goroutines and,
// unless cfg.DisableWriteBatching, the write batcher's flusher; all end
// when the Mux is closed or the connection dies. See MuxConfig for the
// window size rule.
func NewMuxadoMux(conn net.Conn, server bool, cfg MuxConfig) Mux {
	cfg = cfg.withDefaults(server)
	ours := false
	if tc, ok := conn.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		ours = cs.HandshakeComplete && cs.NegotiatedProtocol == TCPALPN
	}
	window := cfg.MaxWindowSize
	if window == 0 {
		window = DefaultWindowSize
		if ours {
			window = LargeWindowSize
		}
	}
	m := &muxadoMux{
		local:  conn.LocalAddr(),
		remote: conn.RemoteAddr(),
		done:   make(chan struct{}),
		ours:   ours,
		window: int64(window),
		tune:   ours && !cfg.fixedWindow && int64(window) > initialSendWindow,
	}
	m.sizer = newFrameSizer(&m.bytesWritten, time.Now)
	var onceDone sync.Once
	onClose := func() {
		onceDone.Do(func() {
			close(m.done)
			m.windows.died()
			m.streamsDied()
		})
	}
	var transport net.Conn
	if cfg.DisableWriteBatching {
		transport = &notifyConn{Conn: conn, onClose: onClose, written: &m.bytesWritten}
	} else {
		bc := newBatchConn(conn, cfg.WriteBufferSize, onClose)
		bc.written = &m.bytesWritten
		bc.wndIncDelay = defaultWndIncDelay
		transport = bc
	}
	mcfg := &muxado.Config{MaxWindowSize: window, AcceptBacklog: cfg.AcceptBacklog, NewFramer: m.newFramer}
	m.transport = transport
	if server {
		m.sess = muxado.Server(transport, mcfg)
	} else {
		m.sess = muxado.Client(transport, mcfg)
	}
	return m
}

// OpenStream opens a stream of type t; the type goes out with the first
// Write. muxado opens streams without a round trip, so this never blocks.
func (m *muxadoMux) OpenStream(ctx context.Context, t StreamType) (Stream, error) {
	var p [4]byte
	return m.openWithPrefix(ctx, AppendStreamType(p[:0], t))
}

func (m *muxadoMux) openWithPrefix(ctx context.Context, prefix []byte) (Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	raw, err := m.sess.OpenStream()
	if err != nil {
		return nil, m.sessionErr("opening stream", err)
	}
	return m.typed(raw, prefix), nil
}

// AcceptStream returns the next stream the peer opened and its type.
func (m *muxadoMux) AcceptStream(ctx context.Context) (StreamType, Stream, error) {
	if ctx.Done() == nil && !m.loopStarted.Load() {
		return m.acceptDirect()
	}
	m.acceptOnce.Do(func() {
		m.accepted = make(chan acceptResult)
		m.loopStarted.Store(true)
		go m.acceptLoop()
	})
	select {
	case r := <-m.accepted:
		return r.t, r.st, r.err
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	case <-m.done:
		return 0, nil, m.deadErr()
	}
}

// acceptDirect accepts on the caller's goroutine. muxado delivers a stream
// with its first frame, which from every muxado peer carries data or FIN,
// so reading the type does not wait on the network.
func (m *muxadoMux) acceptDirect() (StreamType, Stream, error) {
	for {
		raw, err := m.sess.AcceptStream()
		if err != nil {
			// Accept fails only when the session dies; let it finish dying
			// so the error can say why (a GOAWAY's reason, for one).
			select {
			case <-m.done:
			case <-time.After(time.Second):
			}
			return 0, nil, m.sessionErr("accepting stream", err)
		}
		t, err := ReadStreamType(raw)
		if err != nil {
			_ = raw.Close()
			continue
		}
		return t, m.typed(raw, nil), nil
	}
}

// acceptLoop serves AcceptStream calls with a cancellable ctx; it ends
// when the session dies ("tunnel muxado accept loop").
func (m *muxadoMux) acceptLoop() {
	for {
		t, st, err := m.acceptDirect()
		select {
		case m.accepted <- acceptResult{t, st, err}:
		case <-m.done:
			if st != nil {
				_ = st.Close()
			}
			return
		}
		if err != nil {
			return
		}
	}
}

// typed returns raw as a Stream whose writes go in frames the session's
// frameSizer bounds.
func (m *muxadoMux) typed(raw muxado.Stream, prefix []byte) *stream {
	st := newTypedStream(raw, m.local, m.remote, prefix)
	st.sizer = m.sizer
	if m.tune {
		id := raw.Id()
		st.win = m.windows.add(id, m.window)
		st.release = func() { m.windows.remove(id) }
	}
	return st
}

// Close closes the session and the connection.
func (m *muxadoMux) Close() error {
	m.closing.Store(true)
	_ = m.sess.Close()
	<-m.done
	return nil
}

// goAwayer is muxado's session, whose GoAway its Session interface omits.
type goAwayer interface {
	GoAway(code muxado.ErrorCode, debug []byte, deadline time.Time) error
}

// CloseWithReason sends a GOAWAY whose debug data is reason (muxado hands
// it to the peer's Wait), then closes.
func (m *muxadoMux) CloseWithReason(reason string) error {
	return m.closeWith(muxado.NoError, reason)
}

// GoAway sends a GOAWAY with GoAwayCode and reason as its debug data, then
// closes.
func (m *muxadoMux) GoAway(reason string) error {
	return m.closeWith(GoAwayCode, reason)
}

// goAwayLinger bounds how long closeWith waits, its sending half closed,
// for the peer to read the GOAWAY and close the connection.
const goAwayLinger = time.Second

func (m *muxadoMux) closeWith(code muxado.ErrorCode, reason string) error {
	m.closing.Store(true)
	if ga, ok := m.sess.(goAwayer); ok {
		_ = ga.GoAway(code, []byte(clipReason(reason)), time.Now().Add(time.Second))
	}
	// Close the transport rather than the session: muxado's Close sends a
	// second GOAWAY ("no error") that would replace ours at the peer. Close
	// our sending half first and give the peer a moment to read the GOAWAY
	// and hang up: closing at once would make the peer's next write meet a
	// reset, and its session could die of that before it reads our GOAWAY.
	if cw, ok := m.transport.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		t := time.NewTimer(goAwayLinger)
		select {
		case <-m.done:
		case <-t.C:
		}
		t.Stop()
	}
	_ = m.transport.Close()
	<-m.done
	_ = m.sess.Close()
	return nil
}

// Done is closed when the connection is closed.
func (m *muxadoMux) Done() <-chan struct{} { return m.done }

// RemoteAddr returns the connection's remote address.
func (m *muxadoMux) RemoteAddr() net.Addr { return m.remote }

// LocalAddr returns the connection's local address.
func (m *muxadoMux) LocalAddr() net.Addr { return m.local }

// Transport returns "tcp".
func (m *muxadoMux) Transport() string { return "tcp" }

// received counts the bytes read from the peer and the bytes the
// connection took from us: TCP takes bytes only while the peer's kernel
// acknowledges them, so either proves the link alive while our heartbeat
// waits behind our own bulk data.
func (m *muxadoMux) received() uint64 { return m.bytesRead.Load() + m.bytesWritten.Load() }

// peerIsOurs reports whether TLS negotiated TCPALPN.
func (m *muxadoMux) peerIsOurs() bool { return m.ours }

// deadErr explains why the session is dead; call only after done.
func (m *muxadoMux) deadErr() error {
	if m.closing.Load() {
		return ErrClosed
	}
	localErr, remoteErr, debug := m.sess.Wait()
	if remoteErr != nil {
		if code, _ := muxado.GetError(remoteErr); code == GoAwayCode {
			return fmt.Errorf("%w: %s", ErrGoingAway, debug)
		}
		// muxado's own Close sends its error code's text as the reason:
		// that says nothing more than the code.
		if len(debug) > 0 && string(debug) != remoteErr.Error() { // the peer said why (CloseWithReason)
			return fmt.Errorf("peer closed the connection: %s: %w", debug, remoteErr)
		}
		if code, _ := muxado.GetError(remoteErr); code == muxado.NoError {
			return fmt.Errorf("peer closed the connection (%w)", remoteErr)
		}
		return fmt.Errorf("muxado: peer went away: %w", remoteErr)
	}
	if localErr != nil {
		return fmt.Errorf("muxado: %w", localErr)
	}
	return ErrClosed
}

// sessionErr wraps an error from the muxado session.
func (m *muxadoMux) sessionErr(op string, err error) error {
	select {
	case <-m.done:
		return fmt.Errorf("%s: %w", op, m.deadErr())
	default:
	}
	if m.closing.Load() || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// TCPServerTLSConfig returns a copy of base for an edge's agent listener
// over TCP: TLS ≥ 1.2 and TCPALPN offered, so our agents get large windows
// while the SDKs (which offer no ALPN) still connect.
func TCPServerTLSConfig(base *tls.Config) *tls.Config {
	c := &tls.Config{}
	if base != nil {
		c = base.Clone()
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	if !slices.Contains(c.NextProtos, TCPALPN) {
		c.NextProtos = append([]string{TCPALPN}, c.NextProtos...)
	}
	return c
}
