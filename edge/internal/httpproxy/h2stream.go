package httpproxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// h2stream is a proxy stream that carries one HTTP/1.1 exchange at a time
// for an HTTP/2 connection. Its response bytes are read into buf and framed
// by the same code as on HTTP/1.1 (scanHead, parseResponseHead,
// bodyFramer), so a response ends exactly where its framing says; bytes
// beyond it, or any error, retire the stream.
//
// While it waits in the pool a watcher goroutine reads it: anything the
// agent sends then (bytes no request asked for, or the stream's end)
// retires it at once, so it never answers the next request.
type h2stream struct {
	epID string
	st   Stream

	// During an exchange; nil buffers while pooled.
	buf  []byte     // response bytes are buf[r:w]
	body bodyBuffer // owns buf, but for a head that outgrew its buffer
	r, w int
	rerr error // the last read's error, returned once buf[r:w] is used up
	got  bool  // a response byte was read since the request was written
	// bodyTimeout is set by sendBody when the request body was too slow.
	bodyTimeout atomic.Bool
	full        bool // the last read filled buf
	resp        responseHead
	fr          bodyFramer
	// trailer holds the trailer section of a chunked response (bounded by
	// maxTrailerBytes through the scanner).
	trailer []byte

	// Pool state, under the h2conn's mu.
	inPool   bool
	watching bool // the watcher owns st's reads; its result comes on watched
	watched  chan watchResult
	wbuf     [512]byte
}

type watchResult struct {
	n   int
	err error
}

// begin prepares ps for an exchange on a connection that has carried
// carried bytes of response bodies: with a small buffer while that is
// below smallFrameSpan (bulkbuf.go), else with a pool buffer.
func (ps *h2stream) begin(p *Proxy, carried int64) {
	if carried < smallFrameSpan {
		ps.buf = ps.body.startSmall(p, smallFrameSpan-carried)
	} else {
		ps.body.start(p, p.getBuf())
		ps.buf = ps.body.buf()
	}
	ps.r, ps.w, ps.got, ps.full = 0, 0, false, false
	ps.bodyTimeout.Store(false)
	ps.trailer = ps.trailer[:0]
}

// release returns ps's buffers; the bytes left in them, if any, were
// judged by inStep already.
func (ps *h2stream) release(p *Proxy) {
	ps.body.release()
	ps.buf = nil
}

// inStep reports whether the exchange ended with nothing after its
// response: no surplus bytes, no error or end of stream seen.
func (ps *h2stream) inStep() bool { return ps.r == ps.w && ps.rerr == nil }

// fill reads once from the stream into buf[w:], making room first:
// consumed bytes go, and a buffer full of one head grows up to the
// response head limit.
func (ps *h2stream) fill() error {
	if ps.r == ps.w {
		ps.r, ps.w = 0, 0
	}
	if ps.rerr != nil {
		return ps.rerr
	}
	if ps.w == len(ps.buf) {
		switch {
		case ps.r > 0:
			ps.w = copy(ps.buf, ps.buf[ps.r:ps.w])
			ps.r = 0
		case len(ps.buf) < maxResponseHead+minBufferSize:
			nb := make([]byte, min(2*len(ps.buf), maxResponseHead+minBufferSize))
			ps.w = copy(nb, ps.buf[ps.r:ps.w])
			ps.r, ps.buf = 0, nb
		default:
			return errRespTooLarge
		}
	}
	var n int
	var err error
	if ps.watching {
		res := <-ps.watched
		ps.watching = false
		n = copy(ps.buf[ps.w:], ps.wbuf[:res.n])
		if n < res.n {
			err = io.ErrShortBuffer // cannot happen: buf is empty here and larger than wbuf
		} else {
			err = res.err
		}
	} else {
		n, err = ps.st.Read(ps.buf[ps.w:])
	}
	ps.full = n > 0 && ps.w+n == len(ps.buf)
	ps.w += n
	if n > 0 {
		ps.got = true
	}
	if err != nil {
		ps.rerr = err
		if n > 0 {
			return nil
		}
		return err
	}
	return nil
}

// readHead reads until buf[r:] starts with a complete response head and
// returns its length. A head over maxResponseHead is errRespTooLarge: it
// is never buffered whole.
func (ps *h2stream) readHead() (int, error) {
	scanned := 0
	for {
		hl, err := scanHead(ps.buf[ps.r:ps.w], scanned)
		if err != nil {
			return 0, err
		}
		if hl > 0 {
			if hl > maxResponseHead {
				return 0, errRespTooLarge
			}
			return hl, nil
		}
		if scanned = ps.w - ps.r; scanned >= maxResponseHead {
			return 0, errRespTooLarge
		}
		if err := ps.fill(); err != nil {
			return 0, err
		}
	}
}

// frame sets how the body of the final response in ps.resp is framed.
func (ps *h2stream) frame(isHead bool) {
	switch status := ps.resp.status; {
	case isHead || status == http.StatusNoContent || status == http.StatusNotModified:
		ps.fr.kind = frameNone
	case ps.resp.chunked:
		ps.fr.setChunked()
	case ps.resp.contentLength < 0:
		ps.fr.kind = frameClose
	default:
		ps.fr.setLength(ps.resp.contentLength)
	}
}

// errClientGone means a write to the HTTP/2 client failed.
var errClientGone = errors.New("httpproxy: client gone")

// copyBody copies the response body to w, decoding a chunked one, and
// returns the body bytes written. It returns nil only when the body ended
// as its framing says; a stream that ends early is io.ErrUnexpectedEOF.
// window is the client's initial stream window: the body's first flight
// (bulkbuf.go). carried counts the body bytes the connection has written,
// up to smallFrameSpan; copyBody adds to it.
func (ps *h2stream) copyBody(p *Proxy, w http.ResponseWriter, fl http.Flusher, window int64, carried *atomic.Int64) (int64, error) {
	var n int64
	flown := false    // the body went past its first flight
	unflushed := true // the head, then each write until the next flush
	for {
		for ps.r < ps.w || ps.fr.kind == frameNone {
			var data []byte
			var done bool
			switch ps.fr.kind {
			case frameNone:
				return n, nil
			case frameChunked:
				var err error
				if data, done, err = ps.chunkStep(); err != nil {
					return n, err
				}
			default:
				k, d, _ := ps.fr.consume(ps.buf[ps.r:ps.w])
				data, done = ps.buf[ps.r:ps.r+k], d
				ps.r += k
			}
			for len(data) > 0 {
				piece, early := data, carried.Load() < smallFrameSpan
				if early && len(piece) > smallFrame {
					piece = piece[:smallFrame]
				}
				t := time.Now()
				if _, err := w.Write(piece); err != nil {
					return n, errClientGone
				}
				ps.body.wrote(len(piece), time.Since(t))
				if early {
					carried.Add(int64(len(piece)))
				}
				n += int64(len(piece))
				data = data[len(piece):]
				unflushed = true
			}
			if done {
				return n, nil
			}
		}
		if unflushed && fl != nil {
			t := time.Now()
			fl.Flush() // nothing more at hand: send what we have (SSE, streaming)
			ps.body.wrote(0, time.Since(t))
			unflushed = false
		}
		// buf is empty here. A body that fills the buffer while the
		// client keeps up is bulk: copy it in larger pieces (fewer stream
		// reads and handler writes); once a write blocked, in pieces of
		// slowBufferSize until the client keeps up again.
		switch {
		case ps.body.blocked && ps.body.slow == nil:
			ps.buf = ps.body.slowDown(false)
		case !flown && n+slowBufferSize > window:
			flown = true
			ps.buf = ps.body.slowDown(true)
		default:
			ps.buf = ps.body.next(true, ps.full)
			if !flown && int64(len(ps.buf)) > window-n {
				ps.buf = ps.buf[:window-n]
			}
		}
		ps.r, ps.w = 0, 0
		if err := ps.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				if ps.fr.kind == frameClose {
					return n, nil
				}
				return n, io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
}

// chunkStep decodes from buf[r:w]: chunk data (returned), or chunk-size
// lines and the trailer section, which it validates and passes over.
func (ps *h2stream) chunkStep() (data []byte, done bool, err error) {
	sc := &ps.fr.chunks
	if sc.state == chData {
		k := int(min(int64(ps.w-ps.r), sc.remain))
		data = ps.buf[ps.r : ps.r+k]
		sc.scan(data)
		ps.r += k
		return data, false, nil
	}
	for ps.r < ps.w && sc.state != chData {
		inTrailer := sc.state >= chTrailerStart
		k, done, err := sc.scan(ps.buf[ps.r : ps.r+1])
		if err != nil {
			return nil, false, err
		}
		if inTrailer && k > 0 {
			ps.trailer = append(ps.trailer, ps.buf[ps.r])
		}
		ps.r += k
		if done {
			return nil, true, nil
		}
	}
	return nil, false, nil
}

// get returns an idle stream to ep, or opens one.
func (h *h2conn) get(ctx context.Context, ep Endpoint) (*h2stream, bool, error) {
	id := ep.ID()
	h.mu.Lock()
	for i := len(h.idle) - 1; i >= 0; i-- {
		if ps := h.idle[i]; ps.epID == id {
			h.idle = append(h.idle[:i], h.idle[i+1:]...)
			ps.inPool = false
			h.mu.Unlock()
			return ps, true, nil
		}
	}
	h.mu.Unlock()
	st, err := ep.OpenStream(ctx)
	if err != nil {
		return nil, false, err
	}
	return &h2stream{epID: id, st: st, watched: make(chan watchResult, 1)}, false, nil
}

// put keeps ps for reuse, or closes it when the pool is full or gone. A
// pooled stream is watched until it is taken.
func (h *h2conn) put(ps *h2stream) {
	h.mu.Lock()
	if h.closed || len(h.idle) >= h.p.cfg.MaxIdleStreams {
		h.mu.Unlock()
		ps.st.Close()
		return
	}
	ps.inPool, ps.watching = true, true
	h.idle = append(h.idle, ps)
	h.mu.Unlock()
	go h.watch(ps)
}

// watch reads a pooled stream. What arrives while it is still pooled
// retires it; what arrives after it was taken is the start of the taker's
// response and goes to it.
func (h *h2conn) watch(ps *h2stream) {
	n, err := ps.st.Read(ps.wbuf[:])
	h.mu.Lock()
	if ps.inPool {
		ps.inPool = false
		for i, q := range h.idle {
			if q == ps {
				h.idle = append(h.idle[:i], h.idle[i+1:]...)
				break
			}
		}
		h.mu.Unlock()
		ps.st.Close()
		if n > 0 {
			h.p.unsolicited.Add(1)
		}
		return
	}
	h.mu.Unlock()
	ps.watched <- watchResult{n, err}
}

func (h *h2conn) closeIdle() {
	h.mu.Lock()
	h.closed = true
	idle := h.idle
	h.idle = nil
	for _, ps := range idle {
		ps.inPool = false
	}
	h.mu.Unlock()
	for _, ps := range idle {
		ps.st.Close()
	}
}
