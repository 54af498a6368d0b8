package tunnel

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.ngrok.com/muxado/v2/frame"
)

// addGoldens seeds f with every SDK golden message.
func addGoldens(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "sdk", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
}

// FuzzReadRPC feeds arbitrary bytes to the RPC decoder for every request
// type a server decodes and every response a client decodes: no panics,
// the size bound holds, and what decodes re-encodes.
func FuzzReadRPC(f *testing.F) {
	addGoldens(f)
	f.Add([]byte(`{"Error":"x"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		targets := []any{&Auth{}, &Bind{}, &Unbind{}, &SrvInfo{}, &StartTunnelWithLabel{}, &PatchTunnelState{},
			&AuthResp{}, &BindResp{}, &UnbindResp{}, &StopTunnel{}, &Stop{}, &Restart{}, &Update{}, &errorResp{}}
		for _, v := range targets {
			r := bytes.NewReader(data)
			err := ReadRPC(r, v, 256)
			if err == nil {
				if _, err := json.Marshal(v); err != nil {
					t.Fatalf("%T decoded but does not encode: %v", v, err)
				}
			}
			if consumed := len(data) - r.Len(); consumed > 256 {
				t.Fatalf("read %d bytes past the bound", consumed)
			}
		}
	})
}

// FuzzReadProxyHeader checks the proxy header decoder never reads past the
// header, respects its bound and never panics.
func FuzzReadProxyHeader(f *testing.F) {
	var ok bytes.Buffer
	_ = WriteProxyHeader(&ok, &ProxyHeader{ID: "b", ClientAddr: "1.2.3.4:5"})
	f.Add(ok.Bytes(), []byte("tail"))
	f.Add(binary.LittleEndian.AppendUint64(nil, 1<<63), []byte{})
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' '}, []byte("x"))
	f.Fuzz(func(t *testing.T, data, tail []byte) {
		r := bytes.NewReader(append(append([]byte{}, data...), tail...))
		h, err := ReadProxyHeader(r)
		if err != nil {
			return
		}
		if h == nil {
			t.Fatal("nil header without error")
		}
		n := binary.LittleEndian.Uint64(data[:8])
		if n > MaxProxyHeaderBytes {
			t.Fatalf("accepted length %d", n)
		}
		if consumed := len(data) + len(tail) - r.Len(); uint64(consumed) != 8+n {
			t.Fatalf("consumed %d bytes, header is %d", consumed, 8+n)
		}
	})
}

// FuzzDecodeOptions feeds arbitrary JSON to the three option decoders.
func FuzzDecodeOptions(f *testing.F) {
	for _, name := range []string{"bind_http", "bind_tcp", "bind_tls"} {
		b, _ := os.ReadFile(filepath.Join("testdata", "sdk", name+".json"))
		var bind Bind
		if json.Unmarshal(b, &bind) == nil {
			f.Add([]byte(bind.Opts))
		}
	}
	f.Add([]byte(`{"url":"a","URL":"b"}`))
	f.Add([]byte(`{"BasicAuth":{"credentials":[{"hashed_password":"eA=="}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if o, err := DecodeHTTPOptions(data); err == nil && o == nil {
			t.Fatal("nil http options")
		}
		if o, err := DecodeTCPOptions(data); err == nil && o == nil {
			t.Fatal("nil tcp options")
		}
		if o, err := DecodeTLSOptions(data); err == nil && o == nil {
			t.Fatal("nil tls options")
		}
	})
}

// FuzzReadStreamType checks the stream type reader reads exactly 4 bytes.
func FuzzReadStreamType(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'x'})
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		st, err := ReadStreamType(r)
		if len(data) < 4 {
			if err == nil || (!errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF)) {
				t.Fatalf("short input: %v", err)
			}
			return
		}
		if err != nil || uint32(st) != binary.BigEndian.Uint32(data) || r.Len() != len(data)-4 {
			t.Fatalf("got %v %v, %d left", st, err, r.Len())
		}
	})
}

// FuzzParseRemoteError checks that parsing an RPC error string never
// panics and keeps a found code.
func FuzzParseRemoteError(f *testing.F) {
	f.Add("bad token [TG_107]")
	f.Add("ERR_NGROK_99999999999999999999")
	f.Fuzz(func(t *testing.T, s string) {
		e := ParseRemoteError(s)
		_ = e.Error()
		_ = e.Permanent()
		if e.Code != "" && !errorCodePattern.MatchString(e.Code) {
			t.Fatalf("code %q", e.Code)
		}
	})
}

// FuzzProxyHeaderFastPath checks that the reflection-free decoder, where it
// accepts its input, agrees with encoding/json.
func FuzzProxyHeaderFastPath(f *testing.F) {
	f.Add([]byte(`{"Id":"b","ClientAddr":"1.2.3.4:5","Proto":"https","EdgeType":"3","PassthroughTLS":false}`))
	f.Add([]byte(`{"Id":"\xff","ClientAddr":"","Proto":"","EdgeType":"","PassthroughTLS":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast ProxyHeader
		if !parseProxyHeaderFast(data, &fast) {
			return
		}
		var slow ProxyHeader
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses: %v", err)
		}
		if fast != slow {
			t.Fatalf("fast %+v, encoding/json %+v", fast, slow)
		}
	})
}

// FuzzFramerPieces reads any byte stream as muxado frames twice, with
// muxado's own framer and with ours (synFramer, which hands a large DATA
// frame over in pieces): each stream's bytes, FIN and SYN, and every
// other frame, must come out the same, and an input one framer refuses
// the other refuses too, at the same point. One difference is wanted: a
// DATA frame cut short by the end of the input ends its stream with
// muxado's framer (its FIN passes after the short body, so the stream
// would end cleanly, truncated) and not with ours (the session's end
// does: a whole frame's body read fails with io.ErrUnexpectedEOF, a large
// frame's last piece has no FIN), so readFrames drops a FIN whose frame
// was short, and io.ErrUnexpectedEOF counts as the end of the input.
func FuzzFramerPieces(f *testing.F) {
	frameBytes := func(fr frame.Frame) []byte {
		var b bytes.Buffer
		if err := frame.NewFramer(nil, &b).WriteFrame(fr); err != nil {
			f.Fatal(err)
		}
		return b.Bytes()
	}
	data := func(id frame.StreamId, n int, fin, syn bool) []byte {
		var d frame.Data
		if err := d.Pack(id, bytes.Repeat([]byte{byte(n)}, n), fin, syn); err != nil {
			f.Fatal(err)
		}
		return frameBytes(&d)
	}
	var w frame.WndInc
	_ = w.Pack(3, 1<<20)
	// Small pieces (frames above 8 bytes, in pieces of up to 16) keep the
	// inputs small; TestLargeDataFrameInPieces runs the default sizes.
	const splitAbove, pieceMax = 8, 16
	f.Add(data(3, 5, false, true))
	f.Add(append(data(3, 2*pieceMax+1, true, false), frameBytes(&w)...))
	f.Add(append(data(3, splitAbove+1, false, false), data(5, pieceMax, true, false)...))
	f.Add(data(3, 3*pieceMax, true, false)[:muxadoHeaderSize+pieceMax+5]) // cut inside the body
	f.Add(data(7, 70, true, false)[:muxadoHeaderSize+pieceMax])           // cut at a piece's end
	f.Fuzz(func(t *testing.T, in []byte) {
		want, wantErr := readFrames(frame.NewFramer(bytes.NewReader(in), nil))
		got, gotErr := readFrames(&synFramer{Framer: frame.NewFramer(bytes.NewReader(in), nil), m: &muxadoMux{},
			splitAbove: splitAbove, pieceMax: pieceMax})
		// The end of the input inside a frame header is
		// io.ErrUnexpectedEOF from both; inside a body, from ours only.
		for _, err := range []*error{&wantErr, &gotErr} {
			if *err == io.ErrUnexpectedEOF {
				*err = io.EOF
			}
		}
		if (wantErr == io.EOF) != (gotErr == io.EOF) {
			t.Fatalf("muxado's framer: %v; ours: %v", wantErr, gotErr)
		}
		if want != got {
			t.Fatalf("muxado's framer read\n%s\nours\n%s", want, got)
		}
	})
}

// readFrames reads frames until an error and describes what they carried:
// DATA frames as their stream's bytes (consecutive frames of one stream
// joined, so that pieces compare equal to the frame they came from) and
// flags, others by type, stream and length.
func readFrames(fr frame.Framer) (string, error) {
	var out strings.Builder
	var run []byte
	var runID frame.StreamId
	end := func() {
		if run != nil {
			fmt.Fprintf(&out, "data %d %d %x\n", runID, len(run), sha256.Sum256(run))
			run = nil
		}
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			end()
			return out.String(), err
		}
		d, ok := f.(*frame.Data)
		if !ok {
			end()
			fmt.Fprintf(&out, "%T %d %d\n", f, f.StreamId(), f.Length())
			switch f := f.(type) {
			case *frame.Unknown:
				_, _ = io.Copy(io.Discard, f.PayloadReader())
			case *frame.GoAway:
				_, _ = io.Copy(io.Discard, f.Debug())
			}
			continue
		}
		if d.StreamId() != runID || d.Syn() {
			end()
		}
		runID = d.StreamId()
		if d.Syn() {
			fmt.Fprintf(&out, "syn %d\n", runID)
		}
		b, err := io.ReadAll(d.Reader())
		if run == nil {
			run = []byte{}
		}
		run = append(run, b...)
		if err != nil {
			end()
			return out.String(), err
		}
		if d.Fin() && len(b) == int(d.Length()) { // a FIN after a short body: see FuzzFramerPieces
			end()
			fmt.Fprintf(&out, "fin %d\n", runID)
		}
	}
}
