package tunnel

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestCloseAfterWriteDeadline: a stream whose write deadline has passed
// still tells the peer that it closed. crypto/tls does exactly this to a
// connection it runs over: Close (and CloseWrite) send close_notify, then
// set the write deadline to now, then close the connection; over a
// muxado stream the FIN then lost a race against the expired deadline
// now and then, and the peer waited for an end that never came (an edge
// forwarding a public connection to a sibling over the edge-to-edge link
// held it until shutdown).
func TestCloseAfterWriteDeadline(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) {
			client, server := muxPair(t, transport, MuxConfig{})
			ctx := testCtx(t, 60*time.Second)
			for i := 0; i < 300; i++ {
				st, err := client.OpenStream(ctx, StreamProxy)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Write([]byte("hello")); err != nil {
					t.Fatal(err)
				}
				_, peer, err := server.AcceptStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 5)
				if _, err := io.ReadFull(peer, buf); err != nil {
					t.Fatal(err)
				}
				if _, err := peer.Write([]byte("bye")); err != nil {
					t.Fatal(err)
				}
				_ = peer.SetWriteDeadline(time.Now())
				if i%2 == 0 {
					_ = peer.CloseWrite()
				}
				_ = peer.Close()
				_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
				got, err := io.ReadAll(st)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("stream %d: the peer closed it with an expired write deadline, and no end arrived in 5 s (read %q)", i, got)
				}
				_ = st.Close()
			}
		})
	}
}
