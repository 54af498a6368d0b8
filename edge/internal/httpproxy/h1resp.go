package httpproxy

import (
	"errors"
	"io"
	"time"

	"go.uber.org/zap"
)

// maxResponseHead bounds one response head from the upstream.
const maxResponseHead = 1 << 20

// readResponses copies responses from st to the client as raw bytes,
// parsing each head just enough to find where its response ends. It runs
// on its own goroutine for as long as st serves the connection.
//
// It ends when st ends. Between responses that is normal (the upstream
// closed an idle keep-alive connection): the client connection stays and
// the next request opens a new stream. With a request outstanding it
// answers 502 (TG_8012) if no response to it began, and closes the client
// connection.
func (h *h1conn) readResponses(st Stream) {
	var body bodyBuffer // what buf returns to when a head no longer needs more room
	body.start(h.p, h.p.getBuf())
	buf := body.buf()
	defer body.release()

	var (
		r, w, scanned int // unprocessed bytes are buf[r:w]; scanned of them hold no head end
		fr            bodyFramer
		inBody        bool    // the current response's body is being copied
		final         bool    // a final (non-1xx) head for the oldest pending request was copied
		cur           pending // the oldest pending request, when haveCur
		haveCur       bool
		respBytes     int64
	)
	for {
		if inBody && w == 0 && respBytes >= parkAfter && h.sock.full(h.c) {
			// The client's socket is full: wait for it holding no
			// buffer (unsent.go); the body waits in the stream.
			body.park()
			t := time.Now()
			err := h.awaitClient()
			buf = body.unpark(time.Since(t))
			if err != nil {
				h.responsesDone(st, nil, pending{})
				return
			}
		}
		n, rerr := st.Read(buf[w:])
		w += n
		filled := n > 0 && w == len(buf)
		p := r
		completed := 0
		closeAfter, upgraded := false, false
		var perr error
	scan:
		for p < w {
			if inBody {
				k, done, err := fr.consume(buf[p:w])
				p += k
				respBytes += int64(k)
				if err != nil {
					perr = err
					break
				}
				if !done {
					break
				}
				inBody = false
			} else {
				if !haveCur {
					if cur, haveCur = h.pendingAt(completed); !haveCur {
						perr = ErrUnsolicited
						break
					}
					respBytes = 0
				}
				hl, err := scanHead(buf[p:w], scanned)
				if err != nil {
					perr = err
					break
				}
				if hl == 0 {
					if scanned = w - p; scanned >= maxResponseHead {
						perr = errRespTooLarge
					}
					break
				}
				scanned = 0
				if err := parseResponseHead(buf[p:p+hl], &h.resp); err != nil {
					perr = err
					break
				}
				if h.resp.status == 101 && !cur.upgrade {
					perr = errUnexpected101
					break
				}
				if cur.sts != "" && h.resp.status >= 200 && h.resp.status != 101 {
					// The edge's Strict-Transport-Security replaces the
					// upstream's: the head goes out rewritten, up to its
					// empty line.
					if p > r {
						_ = h.writeClient(buf[r:p]) // a failure shows at the next write
					}
					h.hsts = appendHSTSHead(h.hsts[:0], buf[p:p+hl], cur.sts)
					_ = h.writeClient(h.hsts)
					if cap(h.hsts) > maxOutRetain {
						h.hsts = nil // a large head is not kept
					}
					r = p + hl - 2
				}
				if h.resp.status >= 200 && !h.resp.close && h.lastWhileDraining(completed) {
					// Draining: the last response in flight tells the
					// client this connection ends with it.
					end := p + hl - 2 // before the empty line
					if end == r || h.writeClient(buf[r:end]) == nil {
						_ = h.writeClient(connectionClose) // a failure shows at the next write
					}
					r = end
					cur.close = true
				}
				p += hl
				respBytes += int64(hl)
				switch status := h.resp.status; {
				case status == 101:
					upgraded = true
					completed++
					h.report(&cur, respBytes)
					break scan
				case status < 200:
					continue // informational; the final response follows
				case cur.isHead || status == 204 || status == 304:
					fr.kind = frameNone
				case h.resp.chunked:
					fr.setChunked()
				case h.resp.contentLength < 0:
					fr.kind = frameClose
				default:
					fr.setLength(h.resp.contentLength)
				}
				final = true
				if fr.kind != frameNone {
					inBody = true
					continue
				}
			}
			// The response ended at p.
			completed++
			haveCur, final = false, false
			h.report(&cur, respBytes)
			if cur.close || h.resp.close {
				closeAfter = true
				break
			}
		}
		if upgraded {
			p = w
		}
		if p > r {
			t := time.Now()
			if err := h.writeClient(buf[r:p]); err != nil {
				h.responsesDone(st, nil, pending{})
				return
			}
			body.wrote(p-r, time.Since(t))
		}
		if completed > 0 {
			h.complete(completed, upgraded)
		}
		switch {
		case upgraded:
			h.rawToClient(st, buf)
			return
		case closeAfter:
			h.responsesDone(st, nil, pending{})
			return
		case perr != nil:
			var pg *pageSpec
			if haveCur && !final && !errors.Is(perr, ErrUnsolicited) {
				pg = pageBadResponse
			}
			if ce := h.p.log.Check(zap.DebugLevel, "bad response from upstream"); ce != nil {
				ce.Write(zap.String("endpoint", h.endpointID()), zap.Stringer("remote_addr", h.remote), zap.Error(perr))
			}
			h.responsesDone(st, pg, cur)
			return
		}
		if p == w {
			// A body that fills the buffer while the client keeps up is
			// bulk: copy it in larger pieces (fewer stream reads, window
			// updates and writes). When it ends, or the client stalls,
			// the small buffer again.
			r, w = 0, 0
			buf = body.next(inBody, filled)
		} else {
			r = p
			if w == len(buf) {
				if r > 0 {
					w = copy(buf, buf[r:w])
					r = 0
				} else {
					nb := make([]byte, min(2*len(buf), maxResponseHead+minBufferSize))
					w = copy(nb, buf[r:w])
					buf = nb
				}
			}
		}
		if rerr == nil {
			if n == 0 && w == len(buf) {
				h.responsesDone(st, nil, pending{})
				return
			}
			continue
		}
		// The stream ended.
		if inBody && fr.kind == frameClose {
			h.report(&cur, respBytes)
			h.complete(1, false)
			h.responsesDone(st, nil, pending{})
			return
		}
		if !inBody && r == w {
			// Between responses the client connection goes on: a new
			// request opens a new stream. Decided under the lock begin
			// takes, so no request can be queued on st after this.
			h.mu.Lock()
			if h.qn == 0 {
				if h.st == st {
					h.st = nil
				}
				h.bRunning = false
				h.broadcastLocked()
				h.mu.Unlock()
				st.Close()
				return
			}
			h.mu.Unlock()
		}
		var pg *pageSpec
		if !final && !inBody {
			if !haveCur {
				cur, haveCur = h.pendingAt(0)
			}
			if haveCur {
				pg = pageNoResponse
			}
		}
		if ce := h.p.log.Check(zap.DebugLevel, "proxy stream ended with a request outstanding"); ce != nil {
			ce.Write(zap.String("endpoint", h.endpointID()), zap.Stringer("remote_addr", h.remote), zap.Error(rerr))
		}
		h.responsesDone(st, pg, cur)
		return
	}
}

var connectionClose = []byte("Connection: close\r\n")

// lastWhileDraining reports whether the response being read, the one to
// the (done+1)-th oldest pending request, is the last of a draining
// connection: then it is sent with "Connection: close" and no request is
// forwarded after it (begin).
func (h *h1conn) lastWhileDraining(done int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closing || h.qn != done+1 || h.phase == phaseHead {
		return false
	}
	h.lastSent = true
	h.broadcastLocked()
	return true
}

// pendingAt returns the i-th oldest pending request.
func (h *h1conn) pendingAt(i int) (pending, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i >= h.qn {
		return pending{}, false
	}
	return h.q[(h.qh+i)%maxPipelined], true
}

// complete removes the n oldest pending requests, whose responses were
// written. When none is left and the request side waits for a request, the
// idle timeout starts (or, shutting down, the wait ends now).
func (h *h1conn) complete(n int, upgraded bool) {
	h.mu.Lock()
	if upgraded {
		h.upgraded = true
	}
	h.qh = (h.qh + n) % maxPipelined
	h.qn -= n
	if h.qn == 0 && h.phase == phaseIdle && !upgraded {
		if h.closing {
			h.c.SetReadDeadline(aLongTimeAgo)
		} else {
			h.c.SetReadDeadline(time.Now().Add(h.p.cfg.IdleTimeout))
		}
		h.rdSet = true
	}
	h.broadcastLocked()
	h.mu.Unlock()
}

// responsesDone ends the response side for st and closes the client
// connection. pg, when not nil, first answers the oldest pending request e
// (the request side's abort page takes precedence when e is the only one).
func (h *h1conn) responsesDone(st Stream, pg *pageSpec, e pending) {
	h.mu.Lock()
	if pg != nil && h.qn == 1 && h.abortPage != nil {
		pg = h.abortPage
	}
	h.mu.Unlock()
	if pg != nil {
		b := appendH1Page(nil, pg, e.isHead, e.html)
		if h.writeClient(b) == nil {
			if cw, ok := h.c.(closeWriter); ok {
				cw.CloseWrite()
			}
		}
		if h.p.cfg.OnRequest != nil {
			h.info = RequestInfo{Method: e.method, Path: e.path, Proto: e.proto, Start: e.start,
				Status: pg.status, Code: pg.code, ResponseBytes: int64(len(b))}
			h.callHook()
		}
	}
	h.closeClient()
	h.mu.Lock()
	if h.st == st {
		h.st = nil
	}
	h.bRunning = false
	h.broadcastLocked()
	h.mu.Unlock()
	st.Close()
}

// rawToClient copies st to the client after a 101 answer until st ends,
// then half-closes the client connection.
func (h *h1conn) rawToClient(st Stream, buf []byte) {
	for {
		n, err := st.Read(buf)
		if n > 0 {
			if werr := h.writeClient(buf[:n]); werr != nil {
				h.responsesDone(st, nil, pending{})
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if cw, ok := h.c.(closeWriter); ok && cw.CloseWrite() == nil {
					h.mu.Lock()
					h.bRunning = false
					h.broadcastLocked()
					h.mu.Unlock()
					return
				}
			}
			h.responsesDone(st, nil, pending{})
			return
		}
	}
}

// report calls OnRequest for a response that ended.
func (h *h1conn) report(e *pending, respBytes int64) {
	if h.p.cfg.OnRequest == nil {
		return
	}
	h.info = RequestInfo{Method: e.method, Path: e.path, Proto: e.proto, Start: e.start,
		Status: h.resp.status, ResponseBytes: respBytes}
	h.callHook()
}

func (h *h1conn) callHook() {
	h.info.RemoteAddr = h.remote
	h.info.Host = h.authority
	h.info.Endpoint = h.endpoint()
	if h.info.Endpoint != nil {
		h.info.EndpointID = h.info.Endpoint.ID()
	}
	h.info.TLSVersion = h.tlsVer
	h.info.RequestBytes = h.bodyIn.Swap(0)
	h.info.Duration = time.Since(h.info.Start)
	h.p.cfg.OnRequest(&h.info)
}

func (h *h1conn) endpoint() Endpoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ep
}

func (h *h1conn) endpointID() string {
	if ep := h.endpoint(); ep != nil {
		return ep.ID()
	}
	return ""
}
