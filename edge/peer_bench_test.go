package edge

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/tunnel"
)

// BenchmarkForwardedRequest compares an HTTPS request on the edge that
// holds the agent's session (local) with the same request sent to a
// sibling edge, which forwards the connection over the edge-to-edge link
// (forwarded): new connection per request (TLS handshake included), and
// requests on a kept-alive connection. Loopback, two edges in one process.
func BenchmarkForwardedRequest(b *testing.B) {
	r := newTestRegion(b)
	ea := r.startEdge("ed_a", "127.0.0.1", peerSecret)
	eb := r.startEdge("ed_b", "127.0.0.2", peerSecret)
	agent := startTestAgent(b, ea, r.token)
	agent.bind(b, "https", tunnel.HTTPOptions{URL: "https://bench." + peerBase}, httpUpstream(b))
	for _, mode := range []string{"keepalive", "newconn"} {
		for _, via := range []struct {
			name string
			e    *Edge
		}{{"local", ea}, {"forwarded", eb}} {
			b.Run(mode+"/"+via.name, func(b *testing.B) {
				c := r.httpsClient(via.e.Addrs().HTTPS, "127.0.0.3", false)
				if mode == "newconn" {
					c.Transport.(*http.Transport).DisableKeepAlives = true
				}
				_, port, _ := net.SplitHostPort(via.e.Addrs().HTTPS)
				url := "https://bench." + peerBase + ":" + port + "/"
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					resp, err := c.Get(url)
					if err != nil {
						b.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello") {
						b.Fatalf("%d %q", resp.StatusCode, body)
					}
				}
			})
		}
	}
}
