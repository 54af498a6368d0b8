package httpproxy

import "time"

// How an HTTP/1.1 client connection ends: gracefully after the responses
// in flight, with an answer of the proxy's own, by the client's or the
// proxy's shutdown, or aborted.

// graceful ends the connection once the responses in flight are written.
func (h *h1conn) graceful() {
	h.mu.Lock()
	for h.qn > 0 && h.bRunning {
		h.waitLocked()
	}
	h.mu.Unlock()
	h.end()
}

// fail answers the client with pg after the responses in flight, and ends
// the connection. Nothing of the refused request was forwarded.
func (h *h1conn) fail(pg *pageSpec) {
	h.mu.Lock()
	for h.qn > 0 && h.bRunning {
		h.waitLocked()
	}
	// With requests still queued, the response side died and answered them.
	skip := h.clientClosed || h.qn > 0
	h.mu.Unlock()
	if !skip {
		h.out = appendH1Page(h.out[:0], pg, h.req.isHead, h.req.acceptsHTML)
		if h.writeClient(h.out) == nil {
			h.linger()
		}
		h.reportPage(pg)
	}
	h.end()
}

// abortBody cuts the stream in the middle of a request: the upstream sees a
// truncated request, never a complete one. pg, when not nil, answers the
// request if no response to it began.
func (h *h1conn) abortBody(pg *pageSpec) {
	h.mu.Lock()
	h.abortPage = pg
	st := h.st
	h.st = nil
	h.mu.Unlock()
	if st != nil {
		st.Close()
	}
	h.waitResponses()
	h.end()
}

// waitResponses waits until the response goroutine has exited.
func (h *h1conn) waitResponses() {
	h.mu.Lock()
	for h.bRunning {
		h.waitLocked()
	}
	h.mu.Unlock()
}

// end closes the client connection and the stream and waits for the
// response goroutine. It may run more than once.
func (h *h1conn) end() {
	h.abort()
	h.waitResponses()
}

func (h *h1conn) closeClient() {
	h.mu.Lock()
	closed := h.clientClosed
	h.clientClosed = true
	h.broadcastLocked()
	h.mu.Unlock()
	if !closed {
		h.c.Close()
	}
}

type closeWriter interface{ CloseWrite() error }

// linger half-closes the client connection and discards what it still
// sends for a moment, so that closing does not reset the connection before
// the client read the answer.
func (h *h1conn) linger() {
	cw, ok := h.c.(closeWriter)
	if !ok || cw.CloseWrite() != nil {
		return
	}
	h.c.SetReadDeadline(time.Now().Add(lingerTimeout))
	buf := h.inPool
	for n := 0; n < lingerBytes; {
		k, err := h.c.Read(buf)
		n += k
		if err != nil {
			return
		}
	}
}

// shutdown implements servedConn: an idle connection closes now, a busy one
// after its responses in flight.
func (h *h1conn) shutdown() {
	h.mu.Lock()
	h.closing = true
	if h.phase == phaseIdle && h.qn == 0 {
		h.c.SetReadDeadline(aLongTimeAgo)
		h.rdSet = true
	}
	h.mu.Unlock()
}

// abort implements servedConn: it closes the client connection and the
// stream without waiting for the response goroutine.
func (h *h1conn) abort() {
	h.closeClient()
	h.mu.Lock()
	st := h.st
	h.st = nil
	h.mu.Unlock()
	if st != nil {
		st.Close()
	}
}
