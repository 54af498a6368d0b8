package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// QUIC settings. quic-go's defaults send no keepalives and allow only 100
// concurrent incoming streams, too few for an edge proxying many requests.
const (
	quicKeepAlivePeriod    = 10 * time.Second
	quicMaxIdleTimeout     = 30 * time.Second
	quicMaxIncomingStreams = 10000
	quicHandshakeTimeout   = 10 * time.Second
	// quicStreamWindow is a stream's initial receive window. quic-go grows
	// it (up to 6 MiB) only while the reader consumes it within two round
	// trips, as our muxado send windows do (sendwindow.go); a stream whose
	// reader stopped — a public client that does not read its response —
	// holds about this much at the edge (quic-go's default is 512 KiB).
	quicStreamWindow = 32 << 10
	// quicConnWindow and quicMaxConnWindow are the connection's receive
	// window at first and at most. Stalled streams keep their windows'
	// worth of the connection window until read: it must exceed what many
	// of them hold, or they starve every other stream of the session (500
	// slow readers at 32 KiB each are 16 MiB, past quic-go's default
	// maximum of 15 MiB).
	quicConnWindow    = 16 << 20
	quicMaxConnWindow = 64 << 20
	// typeReadTimeout bounds reading an accepted QUIC stream's type: QUIC
	// may deliver a stream (opened implicitly by a higher-numbered one)
	// before its first byte.
	typeReadTimeout = 10 * time.Second
	// quicProbeInterval and quicProbeSize are the agent's liveness probe:
	// a DATAGRAM frame (RFC 9221) of quicProbeSize bytes every interval.
	// It exists for the edge that crashed and restarted on the same port
	// with the same stateless-reset key (quic_resetkey.go): the restarted
	// edge answers a packet of a connection it does not know with a
	// stateless reset (RFC 9000 §10.3), which ends the agent's connection
	// at once — but quic-go answers only packets longer than 42 bytes
	// (protocol.MinStatelessResetSize), and a keep-alive PING with the
	// edge's 4-byte connection IDs is about 25. A probe of 32 bytes of
	// payload makes a packet of ~60, so an agent learns of the crash within
	// one interval instead of at its next heartbeat (10 s) or the idle
	// timeout. Cost: one ~60-byte packet per second per agent; the edge
	// reads and discards them.
	quicProbeInterval = time.Second
	quicProbeSize     = 32
)

// quicConfig returns the quic-go configuration both sides use.
func quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:  quicHandshakeTimeout,
		MaxIdleTimeout:        quicMaxIdleTimeout,
		KeepAlivePeriod:       quicKeepAlivePeriod,
		MaxIncomingStreams:    quicMaxIncomingStreams,
		MaxIncomingUniStreams: -1,   // the protocol uses bidirectional streams only
		EnableDatagrams:       true, // the agent's liveness probes (quicProbeInterval)

		InitialStreamReceiveWindow:     quicStreamWindow,
		InitialConnectionReceiveWindow: quicConnWindow,
		MaxConnectionReceiveWindow:     quicMaxConnWindow,
	}
}

// quicTLSConfig returns a copy of base that offers only QUICALPN.
func quicTLSConfig(base *tls.Config) *tls.Config {
	c := &tls.Config{}
	if base != nil {
		c = base.Clone()
	}
	c.NextProtos = []string{QUICALPN}
	if c.MinVersion < tls.VersionTLS13 {
		c.MinVersion = tls.VersionTLS13 // QUIC requires TLS 1.3
	}
	return c
}

// quicMux is a Mux over a QUIC connection.
type quicMux struct {
	conn    *quic.Conn
	closing atomic.Bool

	acceptOnce sync.Once
	typed      chan typedQUICStream // streams with their type read (acceptLoop)
	acceptDone chan struct{}        // closed when acceptLoop ended; acceptErr says why
	acceptErr  error
}

// NewQUICMux returns a Mux over an established QUIC connection; server is
// true on the edge. Streams are the connection's bidirectional streams.
// quic-go owns the connection's goroutines; Close ends them.
func NewQUICMux(conn *quic.Conn, server bool) Mux {
	if server {
		go discardDatagrams(conn) // "tunnel quic probe sink"
	} else {
		go sendProbes(conn, quicProbeInterval) // "tunnel quic probe"
	}
	return &quicMux{conn: conn}
}

// sendProbes sends the agent's liveness probe (quicProbeInterval) every
// interval until the connection ends, or until the peer turns out not to
// accept datagrams (an edge that predates the probe: nothing to do then).
func sendProbes(conn *quic.Conn, interval time.Duration) {
	if !conn.ConnectionState().SupportsDatagrams.Remote {
		return
	}
	var probe [quicProbeSize]byte
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-conn.Context().Done():
			return
		case <-t.C:
			if err := conn.SendDatagram(probe[:]); err != nil {
				var tooLarge *quic.DatagramTooLargeError
				if errors.As(err, &tooLarge) {
					continue // a path MTU below ~100 bytes: try again later
				}
				return
			}
		}
	}
}

// discardDatagrams reads and drops the agent's probes until the connection
// ends, so that quic-go's queue of received datagrams never fills.
func discardDatagrams(conn *quic.Conn) {
	for {
		if _, err := conn.ReceiveDatagram(conn.Context()); err != nil {
			return
		}
	}
}

// OpenStream opens a stream of type t, waiting (bounded by ctx) while the
// peer's stream limit is reached. The type goes out with the first Write.
func (m *quicMux) OpenStream(ctx context.Context, t StreamType) (Stream, error) {
	var p [4]byte
	return m.openWithPrefix(ctx, AppendStreamType(p[:0], t))
}

func (m *quicMux) openWithPrefix(ctx context.Context, prefix []byte) (Stream, error) {
	st, err := m.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, m.connErr("opening stream", err)
	}
	return newTypedStream(quicStream{st}, m.conn.LocalAddr(), m.conn.RemoteAddr(), prefix), nil
}

// AcceptStream returns the next stream the peer opened whose type has
// arrived. Types are read concurrently, one goroutine per new stream, so a
// stream whose first byte is late — QUIC delivers a stream opened
// implicitly by a higher-numbered one before its data, and that data may
// wait for connection-level flow control that unaccepted streams hold —
// never holds up the streams behind it. Streams may therefore come out of
// order. A stream whose type does not arrive within typeReadTimeout is
// reset.
func (m *quicMux) AcceptStream(ctx context.Context) (StreamType, Stream, error) {
	m.acceptOnce.Do(func() {
		m.typed = make(chan typedQUICStream)
		m.acceptDone = make(chan struct{})
		go m.acceptLoop() // "tunnel quic accept"
	})
	select {
	case ts := <-m.typed:
		return ts.t, newTypedStream(quicStream{ts.st}, m.conn.LocalAddr(), m.conn.RemoteAddr(), nil), nil
	case <-m.acceptDone:
		return 0, nil, m.connErr("accepting stream", m.acceptErr)
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

// typedQUICStream is an accepted QUIC stream with its type read.
type typedQUICStream struct {
	t  StreamType
	st *quic.Stream
}

// acceptLoop accepts the peer's streams until the connection ends and
// reads each one's type on a goroutine of its own.
func (m *quicMux) acceptLoop() {
	done := m.conn.Context().Done()
	for {
		st, err := m.conn.AcceptStream(context.Background())
		if err != nil {
			m.acceptErr = err
			close(m.acceptDone)
			return
		}
		go func() { // "tunnel quic stream type"
			_ = st.SetReadDeadline(time.Now().Add(typeReadTimeout))
			t, err := ReadStreamType(st)
			_ = st.SetReadDeadline(time.Time{})
			if err != nil {
				st.CancelRead(0)
				st.CancelWrite(0)
				return
			}
			select {
			case m.typed <- typedQUICStream{t: t, st: st}:
			case <-done:
				st.CancelRead(0)
				st.CancelWrite(0)
			}
		}()
	}
}

// Close closes the connection with application error 0.
func (m *quicMux) Close() error {
	m.closing.Store(true)
	_ = m.conn.CloseWithError(0, "closed")
	return nil
}

// CloseWithReason closes the connection with application error 0 and
// reason as its message.
func (m *quicMux) CloseWithReason(reason string) error {
	m.closing.Store(true)
	_ = m.conn.CloseWithError(0, clipReason(reason))
	return nil
}

// GoAway closes the connection with application error
// QUICGoingAwayCode and reason as its message.
func (m *quicMux) GoAway(reason string) error {
	m.closing.Store(true)
	_ = m.conn.CloseWithError(QUICGoingAwayCode, clipReason(reason))
	return nil
}

// Done is closed when the connection is closed.
func (m *quicMux) Done() <-chan struct{} { return m.conn.Context().Done() }

// RemoteAddr returns the peer's UDP address.
func (m *quicMux) RemoteAddr() net.Addr { return m.conn.RemoteAddr() }

// LocalAddr returns the local UDP address.
func (m *quicMux) LocalAddr() net.Addr { return m.conn.LocalAddr() }

// Transport returns "quic".
func (m *quicMux) Transport() string { return "quic" }

// received counts the packets received from the peer (ACKs and
// keepalives included).
func (m *quicMux) received() uint64 { return m.conn.ConnectionStats().PacketsReceived }

// peerIsOurs is true: only this package speaks QUICALPN.
func (m *quicMux) peerIsOurs() bool { return true }

func (m *quicMux) connErr(op string, err error) error {
	if m.closing.Load() {
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	var appErr *quic.ApplicationError
	if errors.As(err, &appErr) && appErr.Remote {
		if appErr.ErrorCode == QUICGoingAwayCode {
			return fmt.Errorf("%s: %w: %s", op, ErrGoingAway, appErr.ErrorMessage)
		}
		return fmt.Errorf("%s: quic: peer closed the connection: %w", op, err)
	}
	return fmt.Errorf("%s: quic: %w", op, err)
}

// quicStream adapts a QUIC stream to rawStream: QUIC's Close closes only
// the send side, which is our CloseWrite.
type quicStream struct{ *quic.Stream }

// CloseWrite sends FIN; reads go on.
func (s quicStream) CloseWrite() error { return s.Stream.Close() }

// Close stops reading (the peer's writes fail) and sends FIN.
func (s quicStream) Close() error {
	s.Stream.CancelRead(0)
	return s.Stream.Close()
}

// DialQUIC connects to an edge over QUIC, offering QUICALPN (tlsConf's
// NextProtos are replaced; TLS 1.3 is required by QUIC). Keepalives run
// every 10 s and up to 10,000 streams may be open each way.
func DialQUIC(ctx context.Context, addr string, tlsConf *tls.Config) (Mux, error) {
	conn, err := quic.DialAddr(ctx, addr, quicTLSConfig(tlsConf), quicConfig())
	if err != nil {
		return nil, fmt.Errorf("dialing edge %s over quic: %w", addr, err)
	}
	return NewQUICMux(conn, false), nil
}

// QUICListener accepts agent connections over QUIC.
type QUICListener struct {
	tr *quic.Transport
	ln *quic.Listener
	pc net.PacketConn
}

// ListenQUIC listens for agents on pc (which the listener then owns),
// offering only QUICALPN, with the stateless-reset key of cfg.KeyDir (see
// QUICListenerConfig). Closing the listener closes pc and every connection
// accepted from it. Errors: the key file cannot be read or written, or
// quic-go refuses pc.
func ListenQUIC(pc net.PacketConn, tlsConf *tls.Config, cfg QUICListenerConfig) (*QUICListener, error) {
	key, err := loadQUICResetKey(cfg.KeyDir)
	if err != nil {
		return nil, fmt.Errorf("listening for quic on %s: %w", pc.LocalAddr(), err)
	}
	tr := &quic.Transport{Conn: pc, StatelessResetKey: key}
	ln, err := tr.Listen(quicTLSConfig(tlsConf), quicConfig())
	if err != nil {
		_ = tr.Close()
		return nil, fmt.Errorf("listening for quic on %s: %w", pc.LocalAddr(), err)
	}
	return &QUICListener{tr: tr, ln: ln, pc: pc}, nil
}

// ListenQUICAddr is ListenQUIC on a new UDP socket bound to addr.
func ListenQUICAddr(addr string, tlsConf *tls.Config, cfg QUICListenerConfig) (*QUICListener, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for quic on %s: %w", addr, err)
	}
	l, err := ListenQUIC(pc, tlsConf, cfg)
	if err != nil {
		pc.Close()
		return nil, err
	}
	return l, nil
}

// Accept waits for the next agent connection (handshake complete) and
// returns it as a server-side Mux.
func (l *QUICListener) Accept(ctx context.Context) (Mux, error) {
	conn, err := l.ln.Accept(ctx)
	if err != nil {
		if errors.Is(err, quic.ErrServerClosed) {
			return nil, fmt.Errorf("accepting quic connection: %w", ErrClosed)
		}
		return nil, fmt.Errorf("accepting quic connection: %w", err)
	}
	return NewQUICMux(conn, true), nil
}

// Addr returns the listening address.
func (l *QUICListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops listening, closes every connection accepted from it (without
// a CONNECTION_CLOSE: an edge sends GoAway first) and closes the socket.
func (l *QUICListener) Close() error {
	err := l.ln.Close()
	_ = l.tr.Close()
	if cerr := l.pc.Close(); err == nil && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	return err
}
