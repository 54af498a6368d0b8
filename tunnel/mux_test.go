package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.ngrok.com/muxado/v2"
	"golang.ngrok.com/muxado/v2/frame"
)

func TestMuxOpenAcceptHalfClose(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ctx := testCtx(t, 20*time.Second)
			client, server := muxPair(t, tr, MuxConfig{})
			if client.Transport() != tr || server.Transport() != tr {
				t.Fatalf("transport %q/%q", client.Transport(), server.Transport())
			}
			st, err := client.OpenStream(ctx, StreamBind)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			if err := st.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			typ, sst, err := server.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if typ != StreamBind {
				t.Fatalf("type %v", typ)
			}
			got, err := io.ReadAll(sst) // ends at the client's half-close
			if err != nil || string(got) != "request" {
				t.Fatalf("read %q %v", got, err)
			}
			// The other direction still works after the half-close.
			if _, err := sst.Write([]byte("response")); err != nil {
				t.Fatal(err)
			}
			_ = sst.CloseWrite()
			got, err = io.ReadAll(st)
			if err != nil || string(got) != "response" {
				t.Fatalf("read back %q %v", got, err)
			}
			_ = st.Close()
			_ = sst.Close()
		})
	}
}

// TestMuxReadSendsPrefix checks that a stream whose owner reads first (a
// server-speaks-first protocol) still reaches the peer.
func TestMuxReadSendsPrefix(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ctx := testCtx(t, 20*time.Second)
			client, server := muxPair(t, tr, MuxConfig{})
			st, err := server.OpenStream(ctx, StreamProxy)
			if err != nil {
				t.Fatal(err)
			}
			readDone := make(chan []byte, 1)
			go func() {
				b := make([]byte, 5)
				_, _ = io.ReadFull(st, b)
				readDone <- b
			}()
			typ, cst, err := client.AcceptStream(ctx)
			if err != nil || typ != StreamProxy {
				t.Fatalf("accept %v %v", typ, err)
			}
			if _, err := cst.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			select {
			case b := <-readDone:
				if string(b) != "hello" {
					t.Fatalf("got %q", b)
				}
			case <-ctx.Done():
				t.Fatal("timeout")
			}
		})
	}
}

func TestMuxCloseEndsEverything(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			check := goroutineBaseline(t)
			ctx := testCtx(t, 20*time.Second)
			ln := newTestListener(t, tr, MuxConfig{})
			acc := make(chan Mux, 1)
			go func() {
				m, _ := ln.accept(ctx)
				acc <- m
			}()
			var client Mux
			var err error
			if tr == "tcp" {
				client, err = DialTCP(ctx, ln.addr, clientTLS(t), MuxConfig{})
			} else {
				client, err = DialQUIC(ctx, ln.addr, clientTLS(t))
			}
			if err != nil {
				t.Fatal(err)
			}
			server := <-acc
			if server == nil {
				t.Fatal("accept failed")
			}
			// A cancellable accept on each side starts muxado's helper.
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, _, err := server.AcceptStream(cctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled accept: %v", err)
			}
			st, _ := client.OpenStream(ctx, StreamSrvInfo)
			_, _ = st.Write([]byte("x"))
			if _, _, err := server.AcceptStream(ctx); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { _, _, err := client.AcceptStream(ctx); errc <- err }()

			if err := client.Close(); err != nil {
				t.Fatal(err)
			}
			if err := client.Close(); err != nil {
				t.Fatal("second close", err)
			}
			<-client.Done()
			if err := <-errc; !errors.Is(err, ErrClosed) {
				t.Fatalf("accept after close: %v", err)
			}
			select {
			case <-server.Done():
			case <-ctx.Done():
				t.Fatal("server did not notice the close")
			}
			if _, _, err := server.AcceptStream(ctx); err == nil || errors.Is(err, ErrClosed) {
				t.Fatalf("server accept after peer close: %v (want the peer's reason)", err)
			}
			_ = server.Close()
			ln.close()
			check()
		})
	}
}

// TestMuxadoFirstWriteOneFrame reads the raw muxado frames a client Mux
// writes: the stream type and the first Write share one SYN DATA frame.
func TestMuxadoFirstWriteOneFrame(t *testing.T) {
	for _, batching := range []bool{true, false} {
		c1, c2 := net.Pipe()
		m := NewMuxadoMux(c1, false, MuxConfig{DisableWriteBatching: !batching})
		t.Cleanup(func() { _ = m.Close() })
		t.Cleanup(func() { _ = c2.Close() }) // first, so m's GOAWAY does not wait for a reader
		ctx := testCtx(t, 10*time.Second)
		st, err := m.OpenStream(ctx, StreamBind)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { _, err := st.Write([]byte(`{"Id":""}`)); errc <- err }()
		payload := readFirstFrame(t, c2)
		want := append(AppendStreamType(nil, StreamBind), `{"Id":""}`...)
		if !bytes.Equal(payload, want) {
			t.Fatalf("first frame payload %q, want %q", payload, want)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// TestMuxadoWindowCompat sends bulk data from our server Mux to a plain
// muxado client with the default window, as an SDK agent is: without
// TCPALPN our side must not assume a larger window (the peer would reset
// the stream for a flow-control violation).
func TestMuxadoWindowCompat(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	ctx := testCtx(t, 20*time.Second)
	srv := make(chan Mux, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srv <- nil
			return
		}
		tc := tls.Server(c, TCPServerTLSConfig(serverTLS(t)))
		if tc.HandshakeContext(ctx) != nil {
			srv <- nil
			return
		}
		srv <- NewMuxadoMux(tc, true, MuxConfig{})
	}()
	raw, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: clientTLS(t).RootCAs, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	sdk := muxado.Client(raw, &muxado.Config{}) // the SDK's setup
	t.Cleanup(func() { _ = sdk.Close() })
	server := <-srv
	if server == nil {
		t.Fatal("server handshake failed")
	}
	t.Cleanup(func() { _ = server.Close() })

	const size = 8 << 20
	data := make([]byte, size)
	_, _ = rand.Read(data)
	st, err := server.OpenStream(ctx, StreamProxy)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = st.Write(data)
		_ = st.CloseWrite()
	}()
	// Let the server's whole window arrive before the first Read.
	s, err := sdk.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // lets an oversized window overrun the buffer, if it would
	if _, err := ReadStreamType(s); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("after %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, corrupted", len(got))
	}
}

// TestMuxBulk sends data both ways on many streams at once.
func TestMuxBulk(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ctx := testCtx(t, 60*time.Second)
			client, server := muxPair(t, tr, MuxConfig{})
			const streams, size = 8, 3 << 20
			go func() { // echo server
				for {
					_, st, err := server.AcceptStream(context.WithoutCancel(ctx))
					if err != nil {
						return
					}
					go func() {
						_, _ = io.Copy(st, st)
						_ = st.CloseWrite()
					}()
				}
			}()
			errc := make(chan error, streams)
			for i := 0; i < streams; i++ {
				go func() {
					st, err := client.OpenStream(ctx, StreamProxy)
					if err != nil {
						errc <- err
						return
					}
					defer st.Close()
					data := make([]byte, size)
					_, _ = rand.Read(data)
					go func() {
						_, _ = st.Write(data)
						_ = st.CloseWrite()
					}()
					got, err := io.ReadAll(st)
					if err == nil && !bytes.Equal(got, data) {
						err = errors.New("echo differs")
					}
					errc <- err
				}()
			}
			for i := 0; i < streams; i++ {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// readFirstFrame reads one muxado frame from c and returns its payload; it
// must be a SYN DATA frame.
func readFirstFrame(t *testing.T, c net.Conn) []byte {
	t.Helper()
	f, err := frame.NewFramer(c, c).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	d, ok := f.(*frame.Data)
	if !ok || !d.Syn() {
		t.Fatalf("first frame %v is not a SYN DATA frame", f)
	}
	payload, err := io.ReadAll(d.Reader())
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

// upMuxPair is muxPair over transport, fully up: a stream the client
// opened and wrote to was accepted by the server.
func upMuxPair(t *testing.T, ctx context.Context, transport string) (client, server Mux) {
	t.Helper()
	client, server = muxPair(t, transport, MuxConfig{})
	st, err := client.OpenStream(ctx, StreamSrvInfo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.AcceptStream(ctx); err != nil {
		t.Fatal(err)
	}
	return client, server
}

// TestCloseWithReasonReachesPeer checks that the reason a server closes a
// session with shows up in the client's error, on both transports.
func TestCloseWithReasonReachesPeer(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) {
			ctx := testCtx(t, 10*time.Second)
			client, server := upMuxPair(t, ctx, transport)
			const reason = "The edge is shutting down; the agent will reconnect. [TG_151]"
			if err := server.CloseWithReason(reason); err != nil {
				t.Fatal(err)
			}
			_, _, err := client.AcceptStream(ctx)
			if err == nil || !strings.Contains(err.Error(), reason) {
				t.Fatalf("client error = %v, want it to carry %q", err, reason)
			}
		})
	}
}

// TestPlainCloseReadsCleanly: a peer that closes its muxado session with
// no reason of its own (muxado sends its error code's text as the reason)
// reads as a closed connection, the code said once, not "no error: no
// error" (an agent stopped with SIGTERM, in the edge's log).
func TestPlainCloseReadsCleanly(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	client, server := upMuxPair(t, ctx, "tcp")
	_ = server.Close()
	_, _, err := client.AcceptStream(ctx)
	if err == nil || !strings.Contains(err.Error(), "peer closed the connection") || strings.Contains(err.Error(), "no error: no error") {
		t.Fatalf("client error = %v, want a closed connection said once", err)
	}
}

// TestQUICLateStreamTypeDoesNotBlock: over QUIC, a stream opened first but
// written last (its first byte waits for connection-level flow control that
// a later stream's unread data holds) must not hold up that later stream at
// accept; once the later stream is drained, the first arrives intact. With
// the type read inline in the accept order, both would wait until the
// first stream was reset (typeReadTimeout).
func TestQUICLateStreamTypeDoesNotBlock(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	client, server := muxPair(t, "quic", MuxConfig{})
	first, err := client.OpenStream(ctx, StreamProxy) // nothing sent yet
	if err != nil {
		t.Fatal(err)
	}
	second, err := client.OpenStream(ctx, StreamProxy)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 4<<20) // well past quic-go's initial connection window
	_, _ = rand.Read(big)
	go func() {
		_, _ = second.Write(big)
		_ = second.CloseWrite()
	}()
	// The second stream comes out of accept while the first has no byte yet.
	_, st, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(st)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("second stream: %d bytes, %v", len(got), err)
	}
	go func() {
		_, _ = first.Write([]byte("late"))
		_ = first.CloseWrite()
	}()
	_, st, err = server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(st)
	if err != nil || string(got) != "late" {
		t.Fatalf("first stream: %q, %v", got, err)
	}
}

// rawMuxadoPeer opens a stream on a muxadoMux whose peer is the returned
// end of a net.Pipe, read by hand: the stream's SYN is taken, and every
// later frame (window updates) read and dropped. It returns the stream,
// the peer's end, and the stream's ID.
func rawMuxadoPeer(t *testing.T) (Stream, net.Conn, frame.StreamId) {
	t.Helper()
	c1, c2 := net.Pipe()
	m := NewMuxadoMux(c1, false, MuxConfig{DisableWriteBatching: true})
	t.Cleanup(func() { _ = m.Close() })
	t.Cleanup(func() { _ = c2.Close() })
	ctx := testCtx(t, 10*time.Second)
	st, err := m.OpenStream(ctx, StreamBind)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = st.Write([]byte("x")) }()
	in := frame.NewFramer(c2, nil)
	f, err := in.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	syn, ok := f.(*frame.Data)
	if !ok || !syn.Syn() {
		t.Fatalf("first frame %v is not a SYN DATA frame", f)
	}
	if _, err := io.Copy(io.Discard, syn.Reader()); err != nil {
		t.Fatal(err)
	}
	go func() { // the window updates the stream's reads send
		for {
			f, err := in.ReadFrame()
			if err != nil {
				return
			}
			if d, ok := f.(*frame.Data); ok {
				_, _ = io.Copy(io.Discard, d.Reader())
			}
		}
	}()
	return st, c2, syn.StreamId()
}

// dataFrameWire returns a muxado DATA frame on stream id carrying body
// (FIN when fin), as it goes on the wire.
func dataFrameWire(t *testing.T, id frame.StreamId, body []byte, fin bool) []byte {
	t.Helper()
	var d frame.Data
	if err := d.Pack(id, body, fin, false); err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	if err := frame.NewFramer(nil, &wire).WriteFrame(&d); err != nil {
		t.Fatal(err)
	}
	return wire.Bytes()
}

// TestTruncatedDataFrame: a connection that ends inside a DATA frame
// that carries FIN, small (muxado gets it whole) or large (in pieces),
// never gets that FIN to muxado: muxado ends a stream at a FIN only after
// its body was copied without error (stream.handleStreamData), so a cut
// body would have passed for a complete one. Read here as muxado reads.
func TestTruncatedDataFrame(t *testing.T) {
	for _, size := range []int{1000, 3*dataChunk + 123} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			cut := dataFrameWire(t, 3, bytes.Repeat([]byte{'b'}, size), true)[:muxadoHeaderSize+size/2]
			fr := &synFramer{Framer: frame.NewFramer(bytes.NewReader(cut), nil), m: &muxadoMux{}}
			got := 0
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					break
				}
				var buf bytes.Buffer
				n, err := buf.ReadFrom(f.(*frame.Data).Reader())
				got += int(n)
				if err == nil && f.(*frame.Data).Fin() {
					t.Fatalf("the FIN of a frame cut after %d of %d bytes reached muxado after %d bytes", size/2, size, got)
				}
				if err != nil {
					break
				}
			}
			if got != size/2 {
				t.Fatalf("muxado got %d bytes, want the %d that came", got, size/2)
			}
		})
	}
}

// TestFrameBodyEndsWithLastBytes: a DATA frame's body, whole or a piece
// of a large frame, that fills the stream's bytes.Buffer to the last byte
// leaves it at its size (muxado's ReadFrom would otherwise make room for
// 512 more bytes before the read that finds the end, doubling it).
func TestFrameBodyEndsWithLastBytes(t *testing.T) {
	for _, piece := range []bool{false, true} {
		var buf bytes.Buffer
		buf.Grow(15 << 10)
		size := buf.Cap() // what fills the buffer to the last byte
		body := size
		if piece {
			body = 2 * size // handed over in two pieces of size
		}
		wire := dataFrameWire(t, 3, bytes.Repeat([]byte{'b'}, body), false)
		fr := &synFramer{Framer: frame.NewFramer(bytes.NewReader(wire), nil), m: &muxadoMux{}}
		if piece {
			fr.splitAbove, fr.pieceMax = size, size
		}
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := buf.ReadFrom(f.(*frame.Data).Reader()); err != nil || buf.Len() != size {
			t.Fatalf("piece %v: read %d bytes, %v; want %d", piece, buf.Len(), err, size)
		}
		if buf.Cap() != size {
			t.Fatalf("piece %v: the stream's buffer grew from %d to %d bytes for a body that filled it", piece, size, buf.Cap())
		}
	}
}

// TestLargeDataFrameInPieces sends a DATA frame larger than dataChunk in
// two parts, with a pause between them: the stream's reader gets the
// first piece during the pause (muxado alone holds the stream's buffer
// locked until the whole frame is in), and the pieces add up to the
// frame, its FIN ending the stream after the last byte.
func TestLargeDataFrameInPieces(t *testing.T) {
	st, c2, id := rawMuxadoPeer(t)

	body := make([]byte, 3*dataChunk+123) // within muxado's default window
	_, _ = rand.Read(body)
	wire := dataFrameWire(t, id, body, true)
	first := muxadoHeaderSize + dataChunk + dataChunk/2
	if _, err := c2.Write(wire[:first]); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, len(body))
	read := make(chan error, 1)
	go func() {
		buf := make([]byte, len(body))
		n, err := st.Read(buf)
		got = append(got, buf[:n]...)
		read <- err
	}()
	select {
	case err := <-read:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no byte of a large DATA frame reached the reader before the whole frame arrived")
	}
	if len(got) != dataChunk {
		t.Fatalf("first read %d bytes, want the first piece (%d)", len(got), dataChunk)
	}
	if _, err := c2.Write(wire[first:]); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(st) // ends at the frame's FIN
	if err != nil {
		t.Fatal(err)
	}
	if got = append(got, rest...); !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, want the %d of the frame, in order", len(got), len(body))
	}
}
