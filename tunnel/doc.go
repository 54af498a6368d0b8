// Package tunnel implements the agent↔edge wire protocol, both sides: the
// messages, the typed streams, sessions over TLS+muxado or QUIC,
// heartbeats, and reconnect backoff.
//
// The protocol is the one the hosted platform's agent SDKs speak
// (docs/agent-protocol.md), so those SDKs connect to an edge built on
// ServerSession unmodified, and our own agent uses ClientSession:
//
//   - Over TCP: TLS (≥ 1.2), then a muxado session with the edge in the
//     server role. Over QUIC (ALPN QUICALPN): QUIC streams. Either way every
//     stream starts with a 4-byte big-endian StreamType.
//   - An RPC stream carries one JSON request and one JSON response. A proxy
//     stream (StreamProxy) carries an int64 little-endian length and a JSON
//     ProxyHeader, then raw bytes both ways, half-closed with CloseWrite.
//   - Heartbeats (StreamHeartbeat) run both ways: each side echoes the
//     peer's 4-byte beats and ends the session when its own beats go
//     unanswered for interval + tolerance. Between our own ends (TLS ALPN
//     TCPALPN, or QUIC) each beat opens a stream and closes it once
//     echoed; an SDK peer gets one heartbeat stream for the session.
//   - Closing on purpose: ServerSession.GoAway (an edge draining for a
//     restart) sends a muxado GOAWAY with GoAwayCode, or closes QUIC with
//     QUICGoingAwayCode; our agent's session then ends with ErrGoingAway
//     and it reconnects without a backoff delay. The SDKs reconnect on any
//     close on their own schedule; the Rust crate's (Node, Python SDKs)
//     is 0, 50 ms, 2.55 s, then 127.55 s, so an edge calls GoAway as its
//     last step before exiting (docs/agent-protocol.md#restarts).
//
// Invariants:
//   - A stream's type prefix (and a proxy stream's header) goes out with
//     the stream's first Write, in one frame; a Read or CloseWrite before any
//     Write sends it alone, since the peer cannot answer a stream it has not
//     seen.
//   - Before a successful Auth a ServerSession serves only Auth and
//     heartbeats; any other RPC is answered with codes.NotAuthenticated.
//   - Every decoder is bounded (RPC messages, proxy headers) and fuzzed.
//   - Every goroutine belongs to a Mux or a session and ends when it closes;
//     Run returns (Start's callback runs) only after its session's
//     goroutines have ended. An idle session over TLS+muxado started with
//     Start keeps only muxado's reader and writer: the accept goroutine
//     (started by the framer on a SYN), the write batcher's flusher, the
//     heartbeat beats and the echoes of our own peer's beats run only while
//     busy. Over QUIC one accept goroutine waits for the session's
//     lifetime, besides quic-go's own.
//   - muxado has no window negotiation: a 4 MiB window is used only when
//     both ends are ours (TLS ALPN TCPALPN negotiated); SDK peers get
//     muxado's 256 KiB default. Between our ends the sender keeps its own
//     autotuned window below muxado's (sendwindow.go): 32 KiB in flight
//     per stream, doubling only while the reader consumes a window within
//     two round trips, so a reader that stops (a public client that does
//     not read) holds about 32 KiB at the peer, not 4 MiB.
//   - A QUICListener answers packets of connections it does not hold with
//     a stateless reset when it has a key (QUICListenerConfig.KeyDir keeps
//     one across restarts), so a QUIC agent of a crashed edge learns from
//     the restarted one at its next packet that its connection is gone.
//   - Authtokens are Secret values and are never logged.
//
// This package imports nothing of Tollgate's but codes.
package tunnel
