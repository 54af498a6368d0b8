package tunnel

import (
	"cmp"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.ngrok.com/muxado/v2/frame"
)

// acceptLinger is how long the accept goroutine of serveStreams waits for
// the next stream before it ends: long enough that a busy session reuses
// it (a goroutine per stream costs a wake-up on the request path), short
// enough that an idle session, whose heartbeats open a stream every 10 s
// each way, mostly has none.
const acceptLinger = 100 * time.Millisecond

// streamServer is the state of muxadoMux.serveStreams. muxado hands a
// stream the peer opens to AcceptStream only, so serving streams the usual
// way keeps a goroutine waiting there for the session's lifetime (4 KiB of
// stack or more, a tenth of an idle session). Instead the framer (muxado's
// one hook, Config.NewFramer) counts the DATA frames that open a stream
// (SYN), and an accept goroutine runs only while opened streams have not
// all been taken, and acceptLinger after.
type streamServer struct {
	mu        sync.Mutex
	opened    uint64                   // SYN frames read
	taken     uint64                   // streams taken from muxado's accept queue
	handle    func(StreamType, Stream) // nil until serveStreams
	dead      func(error)              // called once when the session dies
	accepting bool                     // an accept goroutine runs
	more      chan struct{}            // a token when opened grew while accepting
	stopped   bool                     // the session died: start no more
	serving   sync.WaitGroup           // the accept goroutine
	deadOnce  sync.Once
}

// synFramer is muxado's framer, reporting each stream the peer opens
// once muxado has queued it for AcceptStream: when muxado's reader asks
// for the frame after the SYN, having handled that one. The accept
// goroutine then takes the stream without waiting for it.
//
// It also hands muxado a large DATA frame in pieces (dataChunk), read
// from the connection before muxado sees them: see nextChunk.
type synFramer struct {
	frame.Framer
	m       *muxadoMux
	lastSyn bool // the frame read last opened a stream (reader goroutine only)

	// The DATA frame being handed over in pieces (reader goroutine only).
	chunk  frame.Data // the piece handed to muxado last
	rd     pieceBody  // its body, as muxado reads it
	buf    *[]byte    // its bytes (from chunkPool); nil between large frames
	body   io.Reader  // the rest of the frame's body on the connection
	remain int64      // bytes of it not yet read
	sid    frame.StreamId
	fin    bool // the frame ends its stream: the last piece carries FIN

	whole frameBody // the body of a DATA frame muxado gets whole

	// Piece sizes; zero means the default, dataChunk, for both.
	// Tests set them small.
	splitAbove, pieceMax int
}

// dataChunk is the most of a DATA frame's body muxado gets at once, and
// frames with a larger body are handed over this way.
//
// muxado reads a DATA frame's body from the connection into the stream's
// buffer while it holds that buffer's lock (inboundBuffer.ReadFrom): the
// stream's reader cannot take a byte of what came before until the whole
// frame has arrived and been decrypted. With the 64–256 KiB frames of a
// bulk transfer (frameSizer) that serialised the two ends of the edge's
// relay: the response writer waited for the lock while the next frame
// came in. The framer instead reads each piece of up to dataChunk into a
// buffer of its own, without muxado's lock, and hands it over as a DATA
// frame of its own, so that muxado's copy under the lock is a memmove
// and the stream's reader sees each piece as soon as it is in.
//
// Frames of up to dataChunk still go whole (muxado holds the lock while
// at most four TLS records are read; a piece would cost a copy). They
// were split from one record up at first; three BenchmarkSlowReaders
// runs then showed more heap, which later runs put down to that
// benchmark's noise, so this is the cautious choice, not a measured need.
const dataChunk = 64 << 10

// chunkPool holds the framers' piece buffers (*[]byte, len dataChunk),
// taken for the duration of one large frame.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, dataChunk); return &b }}

// ReadFrame reads the next frame (on muxado's reader goroutine).
func (f *synFramer) ReadFrame() (frame.Frame, error) {
	if f.lastSyn {
		f.lastSyn = false
		f.m.peerOpened()
	}
	if f.remain > 0 {
		return f.nextChunk()
	}
	if f.buf != nil { // muxado is done with the last piece
		chunkPool.Put(f.buf)
		f.buf = nil
	}
	fr, err := f.Framer.ReadFrame()
	if err != nil {
		return fr, err
	}
	switch fr := fr.(type) {
	case *frame.Data:
		f.lastSyn = fr.Syn()
		// A stream ID with the reserved top bit set cannot be packed
		// into a piece: muxado gets such a frame whole, as before.
		if !fr.Syn() && int(fr.Length()) > cmp.Or(f.splitAbove, dataChunk) && fr.StreamId() <= 1<<31-1 {
			f.body, f.remain = fr.Reader(), int64(fr.Length())
			f.sid, f.fin = fr.StreamId(), fr.Fin()
			return f.nextChunk()
		}
		// muxado reads the body through the frame's own
		// *io.LimitedReader, which frame.Framer points at the
		// connection for each frame: read it through whole.
		if r := fr.Reader().(*io.LimitedReader); r.N > 0 {
			f.whole.r, f.whole.left = r.R, r.N
			r.R = &f.whole
		}
	case *frame.WndInc:
		if w := f.m.windows.get(uint32(fr.StreamId())); w != nil {
			w.credit(int64(fr.WindowIncrement()))
		}
	case *frame.Rst:
		f.m.windows.reset(uint32(fr.StreamId()))
	}
	return fr, err
}

// nextChunk reads the next piece of the large DATA frame in progress, up
// to dataChunk bytes, and returns it as a DATA frame of its own on the
// same stream: FIN only on the last piece, never SYN (a stream's opening
// frame is not split). A connection error ends the session, as it would
// have inside muxado; a connection that ends inside the frame gives a
// last, short piece without FIN, and the next ReadFrame its end.
func (f *synFramer) nextChunk() (frame.Frame, error) {
	if f.buf == nil {
		f.buf = chunkPool.Get().(*[]byte)
	}
	b := (*f.buf)[:min(int64(cmp.Or(f.pieceMax, dataChunk)), f.remain)]
	n, err := io.ReadFull(f.body, b)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		// The connection ended inside the frame. muxado would have put
		// what came into the stream's buffer and died reading the next
		// frame header: so do we.
		b, f.remain, f.fin = b[:n], int64(n), false
	case err != nil:
		f.remain = 0
		return nil, err
	}
	f.remain -= int64(len(b))
	if err := f.chunk.Pack(f.sid, b, f.fin && f.remain == 0, false); err != nil {
		return nil, err
	}
	// muxado reads a received frame's body through Reader, which is the
	// frame's own *io.LimitedReader: point it at the piece.
	r := f.chunk.Reader().(*io.LimitedReader)
	f.rd.b = b
	r.R, r.N = &f.rd, int64(len(b))
	return &f.chunk, nil
}

// frameBody reads the body of a DATA frame that muxado gets whole, as
// its io.LimitedReader would, with two differences:
//
//   - The last bytes come with io.EOF. muxado copies the body into the
//     stream's bytes.Buffer with ReadFrom, which makes room for 512 more
//     bytes before every read, the one that would only find the end
//     included: when the frame had just filled the buffer (a stream whose
//     reader has stopped holds its whole window), that doubled the
//     buffer for nothing.
//   - A connection that ends inside the body is io.ErrUnexpectedEOF.
//     muxado's reader then ends the session with it and never gets to the
//     frame's FIN, so the stream's reader sees the session's end instead
//     of a clean end of a truncated stream (nextChunk's rule for the
//     pieces of a large frame, here for every frame).
type frameBody struct {
	r    io.Reader
	left int64 // bytes of the body not yet read
}

func (b *frameBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	switch {
	case b.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// pieceBody is a piece's body as muxado reads it: like a bytes.Reader,
// but its last bytes come with io.EOF, for frameBody's first reason.
type pieceBody struct{ b []byte }

func (p *pieceBody) Read(q []byte) (int, error) {
	n := copy(q, p.b)
	p.b = p.b[n:]
	if len(p.b) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// countingReader counts the bytes muxado reads from the connection, which
// prove the peer alive (heartbeat.go) even while a large DATA frame's body
// trickles in.
type countingReader struct {
	r    io.Reader
	n    *atomic.Uint64
	life *lifeSignal
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n.Add(uint64(n))
		c.life.notify()
	}
	return n, err
}

// newFramer is the muxado.Config.NewFramer of a muxadoMux.
func (m *muxadoMux) newFramer(r io.Reader, w io.Writer) frame.Framer {
	return &synFramer{Framer: frame.NewFramer(countingReader{r, &m.bytesRead, &m.life}, w), m: m}
}

// peerOpened counts a stream the peer opened and makes sure an accept
// goroutine will take it.
func (m *muxadoMux) peerOpened() {
	s := &m.streams
	s.mu.Lock()
	s.opened++
	if s.handle != nil && !s.stopped {
		if s.accepting {
			signal(s.more)
		} else {
			s.startLocked(m)
		}
	}
	s.mu.Unlock()
}

func (s *streamServer) startLocked(m *muxadoMux) {
	s.accepting = true
	s.serving.Add(1)
	go m.acceptOnDemand()
}

// serveStreams hands every stream the peer opens (with its type read) to
// handle, on a goroutine that runs only while streams wait to be taken,
// and calls dead once, on a goroutine of its own, with why the session
// ended (as AcceptStream would return it) when it dies. handle may block;
// streams wait meanwhile. Do not call AcceptStream as well. waitServing
// waits for the accept goroutine after the session died.
func (m *muxadoMux) serveStreams(handle func(StreamType, Stream), dead func(error)) {
	s := &m.streams
	s.mu.Lock()
	s.handle, s.dead = handle, dead
	s.more = make(chan struct{}, 1)
	if s.opened > s.taken && !s.stopped {
		s.startLocked(m)
	}
	s.mu.Unlock()
	select {
	case <-m.done: // died before dead was set
		m.streamsDied()
	default:
	}
}

// acceptOnDemand takes the streams the peer opened until none has waited
// for acceptLinger ("tunnel muxado accept on demand"); it ends early when
// the session dies (serveStreams's dead reports that).
func (m *muxadoMux) acceptOnDemand() {
	s := &m.streams
	defer s.serving.Done()
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	for {
		s.mu.Lock()
		for s.taken >= s.opened && !s.stopped { // none waits: linger
			s.mu.Unlock()
			if linger == nil {
				linger = time.NewTimer(acceptLinger)
			} else {
				linger.Reset(acceptLinger)
			}
			select {
			case <-s.more:
			case <-m.done:
			case <-linger.C:
				s.mu.Lock()
				if s.taken >= s.opened {
					s.accepting = false
					s.mu.Unlock()
					return
				}
				s.mu.Unlock()
			}
			s.mu.Lock()
		}
		if s.stopped {
			s.accepting = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		// A SYN that muxado refused (accept queue full, going away) is
		// counted but never queued: then this waits for the next stream, as
		// a permanent accept loop would.
		raw, err := m.sess.AcceptStream()
		if err != nil {
			s.mu.Lock()
			s.accepting = false
			s.mu.Unlock()
			return
		}
		// muxado delivers a stream with its first frame, which from every
		// muxado peer carries data or FIN: the type is already here.
		if t, err := ReadStreamType(raw); err != nil {
			_ = raw.Close()
		} else {
			s.handle(t, m.typed(raw, nil))
		}
		s.mu.Lock()
		s.taken++
		s.mu.Unlock()
	}
}

// streamsDied runs when the transport closes: it reports the end to
// serveStreams's dead, once.
func (m *muxadoMux) streamsDied() {
	s := &m.streams
	s.mu.Lock()
	s.stopped = true
	dead := s.dead
	s.mu.Unlock()
	if dead == nil {
		return
	}
	s.deadOnce.Do(func() {
		go func() { // "tunnel muxado session end"
			dead(fmt.Errorf("accepting stream: %w", m.deadErr()))
		}()
	})
}

// waitServing waits until no accept goroutine runs; call it after the
// session died.
func (m *muxadoMux) waitServing() { m.streams.serving.Wait() }
