package tunnel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// lingerTimeout bounds how long a session waits, after a last response
// that precedes its own close, for the peer to finish reading it.
const lingerTimeout = time.Second

// core is what ServerSession and ClientSession share: the Mux, the reason
// the session ended, the goroutines it owns and the heartbeats.
type core struct {
	mux     Mux
	log     *zap.Logger
	hb      heartbeater
	wg      sync.WaitGroup // every goroutine the session starts
	started atomic.Bool
	echoes  atomic.Int32

	reasonOnce sync.Once
	reason     error
	reasonSet  chan struct{} // closed once reason is set
}

func (c *core) init(mux Mux, log *zap.Logger, interval, tolerance time.Duration) {
	c.mux = mux
	if log == nil {
		c.log = zap.NewNop()
	} else {
		// Lazily: the session logs only at debug level, and an eager With
		// keeps an encoded copy of the fields (~650 bytes a session).
		c.log = log.WithLazy(zap.String("remote_addr", mux.RemoteAddr().String()), zap.String("transport", mux.Transport()))
	}
	c.hb.mux, c.hb.interval, c.hb.tolerance = mux, interval, tolerance
	c.hb.perBeat = streamPerBeat(mux)
	c.reasonSet = make(chan struct{})
}

// close records reason (the first one wins) and closes the Mux.
func (c *core) close(reason error) {
	c.setReason(reason)
	_ = c.mux.Close()
}

// setReason records why the session ends (the first one wins; nil =
// ErrClosed) without closing it yet, for a last response that must reach
// the peer before the close, which the peer may beat us to.
func (c *core) setReason(reason error) {
	if reason == nil {
		reason = ErrClosed
	}
	c.reasonOnce.Do(func() {
		c.reason = reason
		close(c.reasonSet)
	})
}

// err returns why the session ended, or ErrClosed while that is not known.
func (c *core) err() error {
	select {
	case <-c.reasonSet:
		return c.reason
	default:
		return ErrClosed
	}
}

// endErr returns why the session ended, wrapping ErrClosed; it waits
// briefly for Run to record the reason after the Mux died.
func (c *core) endErr() error {
	if c.started.Load() {
		t := time.NewTimer(lingerTimeout)
		defer t.Stop()
		select {
		case <-c.reasonSet:
		case <-t.C:
		}
	}
	err := c.err()
	if errors.Is(err, ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrClosed, err)
}

// start is the body of both sessions' Run and Start: heartbeats plus the
// streams the peer opens, each handed to handle on an accept goroutine (one
// at a time; handle may block, streams then wait). When the Mux dies or
// ctx ends it cancels the session context, waits for every goroutine the
// session started and calls end with the reason.
//
// Over TLS+muxado the accept goroutine runs only while streams wait
// (muxadoMux.serveStreams) and end runs on a goroutine of its own: an idle
// session keeps no goroutine of the session's. Other Muxes need a
// goroutine waiting in AcceptStream for the session's lifetime: start
// returns it as loop, for the caller to run (end then runs on it).
func (c *core) start(ctx context.Context, handle func(ctx context.Context, t StreamType, st Stream), end func(error)) (loop func(), err error) {
	if !c.started.CompareAndSwap(false, true) {
		return nil, errors.New("tunnel: session started twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	stopWatch := context.AfterFunc(ctx, func() { c.close(context.Cause(ctx)) })
	c.hb.dead = func(err error) {
		c.log.Debug("peer stopped answering heartbeats", zap.Error(err))
		c.close(err)
	}
	c.hb.start()
	finish := func(err error, waitAccept func()) {
		c.close(err)
		stopWatch()
		cancel()
		c.hb.stop()
		waitAccept() // handle adds to wg: it must be done before wg.Wait
		c.wg.Wait()
		end(c.reason)
	}
	serve := func(t StreamType, st Stream) { handle(ctx, t, st) }
	if mm, ok := c.mux.(*muxadoMux); ok {
		mm.serveStreams(serve, func(err error) { finish(err, mm.waitServing) })
		return nil, nil
	}
	return func() { c.acceptLoop(ctx, serve, finish) }, nil
}

// acceptLoop serves the streams of a Mux that cannot report them (QUIC)
// until it dies ("tunnel session accept loop").
func (c *core) acceptLoop(ctx context.Context, serve func(StreamType, Stream), finish func(error, func())) {
	acceptCtx := context.WithoutCancel(ctx) // closing the Mux ends the wait
	for {
		t, st, err := c.mux.AcceptStream(acceptCtx)
		if err != nil {
			finish(err, func() {})
			return
		}
		serve(t, st)
	}
}

// runSync runs a session begun by begin (a session's start) until it
// ends, the accept loop (if any) on the caller's goroutine, and returns
// why it ended.
func runSync(begin func(end func(error)) (loop func(), err error)) error {
	ended := make(chan error, 1)
	loop, err := begin(func(err error) { ended <- err })
	if err != nil {
		return err
	}
	if loop != nil {
		loop()
	}
	return <-ended
}

// startAsync is runSync without the wait: end (nil = none) gets why the
// session ended.
func startAsync(begin func(end func(error)) (loop func(), err error), end func(error)) error {
	if end == nil {
		end = func(error) {}
	}
	loop, err := begin(end)
	if err != nil {
		return err
	}
	if loop != nil {
		go loop()
	}
	return nil
}

// echo answers the peer's heartbeats on st in an owned goroutine; beyond
// maxEchoStreams concurrent heartbeat streams, st is refused.
func (c *core) echo(st Stream) {
	if c.echoes.Add(1) > maxEchoStreams {
		c.echoes.Add(-1)
		_ = st.Close()
		return
	}
	c.wg.Go(func() {
		defer c.echoes.Add(-1)
		echoHeartbeats(st)
	})
}

// roundTrip runs one RPC: it opens a stream of type t, writes req, and
// reads resp (at most max bytes). ctx bounds the wait for the response.
// Only the read gets a deadline: a muxado write that times out can leave
// its frame queued, and reusing the stream afterwards would corrupt the
// connection.
func roundTrip(ctx context.Context, mux Mux, t StreamType, req, resp any, max int) error {
	st, err := mux.OpenStream(ctx, t)
	if err != nil {
		return fmt.Errorf("%s request: %w", t, err)
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.SetReadDeadline(time.Now()) })
	defer stop()
	if err := WriteRPC(st, req); err != nil {
		return fmt.Errorf("sending %s request: %w", t, err)
	}
	if err := ReadRPC(st, resp, max); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s request: %w", t, ctx.Err())
		}
		return fmt.Errorf("reading %s response: %w", t, err)
	}
	return nil
}

// respondAndLinger writes a last response on st, half-closes it and waits
// (bounded) for the peer to close its side, so that closing the whole
// connection next cannot drop the response (QUIC discards unsent stream
// data on connection close).
func respondAndLinger(st Stream, resp any) {
	if err := WriteRPC(st, resp); err != nil {
		return
	}
	_ = st.CloseWrite()
	_ = st.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, io.LimitReader(st, 64<<10))
}

// readRequest reads one RPC request from st within timeout.
func readRequest(st Stream, v any, max int, timeout time.Duration) error {
	_ = st.SetReadDeadline(time.Now().Add(timeout))
	err := ReadRPC(st, v, max)
	_ = st.SetReadDeadline(time.Time{})
	return err
}

// randomID returns 16 random bytes in hex, for IDs the peer left empty.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
