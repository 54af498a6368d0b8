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
// HTTP/2 (ALPN "h2") is served by net/http's own HTTP/2 server (one
// http.Server per Proxy, Protocols set to unencrypted HTTP/2 only,
// HTTP2Config) with bounded concurrent streams (100 by default) and header
// size. The proxy reads the client preface and hands each connection to
// the server's HTTP/2 connection handler on the goroutine that accepted
// it (h2server.go). Each request
// travels as HTTP/1.1 over a proxy stream drawn from a per-connection pool,
// and its response is read by the same bounded, strict parser as on
// HTTP/1.1. A pooled stream is retired, never reused, after surplus bytes,
// a framing error, or anything the agent sends while it is idle. Only a
// request that is safe to repeat (idempotent method, no body) is sent again
// when a reused stream turns out dead. A client that resets more than
// MaxStreamResets streams in 10 s gets GOAWAY(ENHANCE_YOUR_CALM) (rapid
// reset); a request reset before it is forwarded opens no proxy stream.
//
// Shutdown drains: HTTP/1.1 connections close once idle and their last
// response carries "Connection: close"; HTTP/2 connections get GOAWAY with
// the last stream ID; accepted requests finish until the context ends.
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
//     folded to IPv4); client-sent X-Forwarded-*, Forwarded and X-Real-IP
//     are removed, and so is every header whose name has an underscore
//     (X_Forwarded_For, Client_IP: frameworks that map "-" and "_" alike
//     would read them as the edge's), as Envoy's
//     headers_with_underscores_action DROP_HEADER does. A Connection option
//     naming a removed field is removed with it.
//   - An upstream response head is at most 1 MiB and is refused (502)
//     once it passes that, never buffered whole; Content-Length with
//     Transfer-Encoding, bare LF and obs-fold in responses are refused on
//     HTTP/1.1 and HTTP/2 alike.
//   - When the upstream's response cannot be delivered whole, the client
//     sees the HTTP/2 stream reset or the HTTP/1.1 connection close: never
//     a status the upstream did not send (an edge error page, with its
//     TG_ code, only before any response byte).
//   - A request body must keep arriving: no gap longer than
//     BodyReadTimeout, and at least MinBodyRate on average after the
//     first BodyReadTimeout; else its proxy stream is released and the
//     client gets 408.
//   - Every error page carries a TG_ code in its body and in the
//     Tollgate-Error-Code header.
//   - An endpoint's HSTS policy (HSTSPolicy) is the only
//     Strict-Transport-Security field of its final responses over TLS,
//     HTTP/1.1 and HTTP/2 alike; the upstream's are removed. Over a
//     connection that is not TLS the field is never added (RFC 6797 §7.2).
//   - A request refused by Config.Overload opens no proxy stream and
//     sends no byte to the agent, on a kept-alive or HTTP/2 connection too.
package httpproxy
