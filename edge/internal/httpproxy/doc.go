// Package httpproxy is the edge's HTTP data path: it serves public HTTP/1.1
// and HTTP/2 client connections and relays each request to the endpoint's
// agent over proxy streams.
//
// Terms, as everywhere in Tollgate: the Endpoint is the public URL a
// request is for, resolved by host; the agent serves it over proxy streams
// (Stream); the upstream is the service behind the agent, which answers.
//
// HTTP/1.1 is the fast path. Each client connection gets exactly one proxy
// stream, opened on its first request and reopened only if the agent side
// closes it between requests. Request heads are parsed strictly by this
// package's own bounded parser, rewritten (X-Forwarded-*, Forwarded) and
// written to the stream together with the first body bytes; bodies pass as
// they are framed; responses are copied back as raw bytes while their heads
// are parsed just enough to know where each response ends. One goroutine
// serves each direction of a connection; buffers come from a pool; a request
// allocates nothing in the steady state.
//
// HTTP/2 (ALPN "h2") is served by golang.org/x/net/http2 with bounded
// concurrent streams and header size; each request travels as HTTP/1.1 over
// a proxy stream drawn from a per-connection pool.
//
// Invariants:
//   - SNI, Host and an absolute request target (or :authority) name the same
//     host, else 421 (TG_3220); a request never reaches another endpoint.
//   - A request whose length is ambiguous (Content-Length with
//     Transfer-Encoding, two Content-Lengths, a bad chunk, obs-fold, bare LF,
//     control characters) is answered 400 and the connection closes;
//     nothing after it is forwarded.
//   - Head size and head read time are bounded (431, 408).
//   - X-Forwarded-For carries only the TCP peer address (IPv4-mapped IPv6
//     folded to IPv4); client-sent X-Forwarded-* and Forwarded are removed.
//   - Every error page carries a TG_ code in its body and in the
//     Tollgate-Error-Code header.
package httpproxy
