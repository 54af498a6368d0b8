package tunnel

import (
	"context"
	"net"
)

// ALPN protocol IDs.
const (
	// QUICALPN is the ALPN of the agent protocol over QUIC; both sides must
	// set it (quic-go refuses a handshake without ALPN).
	QUICALPN = "tollgate-tunnel/1"
	// TCPALPN is offered by our agent over TLS+muxado and listed by our
	// edge. When both ends negotiate it, both use LargeWindowSize muxado
	// windows; the SDKs offer no ALPN and get muxado's default.
	TCPALPN = "tollgate-muxado/1"
)

// muxado stream window sizes.
const (
	// DefaultWindowSize is muxado's default per-stream window, the one
	// every SDK uses.
	DefaultWindowSize = 256 << 10
	// LargeWindowSize is the window used when both ends are ours.
	LargeWindowSize = 4 << 20
)

// Stream is one typed stream of a Mux: a net.Conn whose CloseWrite
// half-closes the send side (the peer reads io.EOF) while reads go on.
type Stream interface {
	net.Conn
	CloseWrite() error
}

// Mux is a multiplexed connection between an agent and an edge whose
// streams start with a StreamType. Its implementations are NewMuxadoMux
// (TLS over TCP) and NewQUICMux.
type Mux interface {
	// OpenStream opens a stream of type t. Nothing is sent until the
	// stream's first Write (or Read, CloseWrite, Close): the type prefix
	// goes out with that first Write in one frame.
	OpenStream(ctx context.Context, t StreamType) (Stream, error)
	// AcceptStream returns the next stream the peer opened and its type.
	// A stream that ends before its 4-byte type is dropped. After the Mux
	// is closed it returns an error wrapping ErrClosed or the cause of
	// the connection's end. On muxado, a ctx that can be cancelled starts
	// a helper goroutine that serves every later call for the Mux's
	// lifetime; pass a ctx whose Done is nil (context.WithoutCancel) where
	// closing the Mux ends the wait.
	AcceptStream(ctx context.Context) (StreamType, Stream, error)
	// Close closes the connection and every stream; it is idempotent.
	Close() error
	// CloseWithReason tells the peer why (in a muxado GOAWAY's debug data,
	// or as the QUIC application close reason; at most MaxCloseReason
	// bytes), then closes like Close. The peer's errors from then on carry
	// the reason.
	CloseWithReason(reason string) error
	// GoAway closes like CloseWithReason, telling the peer that this end
	// is going away on purpose (an edge draining for a restart) rather
	// than failing: a muxado GOAWAY with code GoAwayCode, or the QUIC
	// application error QUICGoingAwayCode. The peer's errors from then on
	// wrap ErrGoingAway.
	GoAway(reason string) error
	// Done is closed when the connection is dead, for whatever reason.
	Done() <-chan struct{}
	// RemoteAddr is the peer's address of the underlying connection.
	RemoteAddr() net.Addr
	// LocalAddr is the local address of the underlying connection.
	LocalAddr() net.Addr
	// Transport returns "tcp" (TLS+muxado) or "quic".
	Transport() string
}

// Codes that say "going away on purpose" (Mux.GoAway). Every SDK
// reconnects on any GOAWAY or connection close; our agent also skips its
// backoff delay for these (docs/agent-protocol.md#restarts).
const (
	// GoAwayCode is the muxado GOAWAY error code of Mux.GoAway: muxado's
	// RemoteGoneAway (11), which no muxado implementation sends itself.
	GoAwayCode = 11
	// QUICGoingAwayCode is the QUIC application error code of Mux.GoAway.
	QUICGoingAwayCode = 0x7467 // "tg"
)

// MaxCloseReason bounds the reason CloseWithReason sends.
const MaxCloseReason = 1024

func clipReason(r string) string {
	if len(r) > MaxCloseReason {
		return r[:MaxCloseReason]
	}
	return r
}

// prefixOpener is implemented by this package's Muxes: it opens a stream
// whose first Write is preceded by prefix in the same frame.
type prefixOpener interface {
	openWithPrefix(ctx context.Context, prefix []byte) (Stream, error)
}

// openWithPrefix opens a stream of type t whose first Write carries
// prefix (which starts with t's 4 bytes, then for example a proxy header)
// in the same frame. Muxes from elsewhere get the rest written eagerly.
func openWithPrefix(ctx context.Context, m Mux, t StreamType, prefix []byte) (Stream, error) {
	if po, ok := m.(prefixOpener); ok {
		return po.openWithPrefix(ctx, prefix)
	}
	st, err := m.OpenStream(ctx, t)
	if err != nil {
		return nil, err
	}
	if len(prefix) > 4 {
		if _, err := st.Write(prefix[4:]); err != nil {
			_ = st.Close()
			return nil, err
		}
	}
	return st, nil
}

// MuxConfig configures a muxado Mux. The zero value is ready to use.
type MuxConfig struct {
	// MaxWindowSize is each stream's receive window and, because muxado
	// does not negotiate windows, also the send window it assumes of the
	// peer; both ends must agree. 0 (the default) chooses automatically:
	// LargeWindowSize when the TLS connection negotiated TCPALPN (both
	// ends are ours), else DefaultWindowSize (what the SDKs use; a larger
	// window would overrun their receive buffers and reset streams).
	MaxWindowSize uint32
	// AcceptBacklog bounds streams opened by the peer and not yet
	// accepted; muxado resets streams beyond it. Default: 128 (muxado's)
	// on the agent, where the edge's proxy streams arrive in bursts;
	// DefaultServerAcceptBacklog on the edge, where an agent opens only
	// RPC and heartbeat streams, which the session accepts at once. muxado
	// allocates the backlog (16 bytes an entry) for the session's lifetime.
	AcceptBacklog uint32
	// DisableWriteBatching writes each muxado frame straight to the
	// connection (two TLS records per frame) instead of batching frames
	// through one writer goroutine. For comparison benchmarks.
	DisableWriteBatching bool
	// WriteBufferSize bounds the bytes queued for the connection before
	// writers block; default 256 KiB. Only with write batching.
	WriteBufferSize int

	// fixedWindow turns off send-window autotuning (sendwindow.go): a
	// stream may have all of muxado's window in flight, as before
	// autotuning. For comparison benchmarks.
	fixedWindow bool
}

// Accept backlog defaults (MuxConfig.AcceptBacklog).
const (
	// DefaultAcceptBacklog is the agent side's (muxado's default).
	DefaultAcceptBacklog = 128
	// DefaultServerAcceptBacklog is the edge side's: a ServerSession
	// hands each stream to a goroutine at once and blocks only while
	// ServerConfig.MaxConcurrentRPCs RPCs run.
	DefaultServerAcceptBacklog = 32
)

func (c MuxConfig) withDefaults(server bool) MuxConfig {
	if c.AcceptBacklog == 0 {
		c.AcceptBacklog = DefaultAcceptBacklog
		if server {
			c.AcceptBacklog = DefaultServerAcceptBacklog
		}
	}
	if c.WriteBufferSize <= 0 {
		c.WriteBufferSize = 256 << 10
	}
	return c
}
