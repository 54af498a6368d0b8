package tunnel

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestStreamTypeRoundTrip(t *testing.T) {
	for _, st := range []StreamType{StreamAuth, StreamProxy, StreamPatchTunnelState, StreamHeartbeat} {
		var buf bytes.Buffer
		if err := WriteStreamType(&buf, st); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), AppendStreamType(nil, st)) {
			t.Fatal("append and write differ")
		}
		got, err := ReadStreamType(&buf)
		if err != nil || got != st {
			t.Fatalf("got %v %v", got, err)
		}
	}
	if !bytes.Equal(AppendStreamType(nil, StreamHeartbeat), []byte{0xff, 0xff, 0xff, 0xff}) ||
		!bytes.Equal(AppendStreamType(nil, StreamProxy), []byte{0, 0, 0, 3}) {
		t.Fatal("stream type must be big-endian")
	}
	if _, err := ReadStreamType(bytes.NewReader([]byte{0, 0})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short: %v", err)
	}
}

func TestProxyHeaderRoundTrip(t *testing.T) {
	h := &ProxyHeader{ID: "bind1", ClientAddr: "203.0.113.7:51000", Proto: "https", EdgeType: "3"}
	var buf bytes.Buffer
	if err := WriteProxyHeader(&buf, h); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("raw bytes")
	// The length is little-endian and the JSON is the SDK's.
	n := binary.LittleEndian.Uint64(buf.Bytes()[:8])
	if !sameJSON(t, buf.Bytes()[8:8+n], readGolden(t, "proxy_header")) {
		t.Fatalf("json differs: %s", buf.Bytes()[8:8+n])
	}
	got, err := ReadProxyHeader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *h {
		t.Fatalf("got %+v", got)
	}
	if rest, _ := io.ReadAll(&buf); string(rest) != "raw bytes" {
		t.Fatalf("read past the header: %q", rest)
	}
}

func TestReadProxyHeaderBounds(t *testing.T) {
	frame := func(n int64, body string) io.Reader {
		b := binary.LittleEndian.AppendUint64(nil, uint64(n))
		return bytes.NewReader(append(b, body...))
	}
	cases := []struct {
		name string
		r    io.Reader
		want error
	}{
		{"too large", frame(MaxProxyHeaderBytes+1, ""), ErrMessageTooLarge},
		{"negative", frame(-1, ""), ErrMalformed},
		{"short body", frame(10, "{}"), io.ErrUnexpectedEOF},
		{"short length", bytes.NewReader([]byte{1, 2}), io.ErrUnexpectedEOF},
		{"bad json", frame(3, "{x}"), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadProxyHeader(tc.r); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Exactly at the bound is fine.
	body := `{"Id":"` + strings.Repeat("a", MaxProxyHeaderBytes-9) + `"}`
	if _, err := ReadProxyHeader(frame(int64(len(body)), body)); err != nil {
		t.Fatalf("at bound: %v", err)
	}
	if err := WriteProxyHeader(io.Discard, &ProxyHeader{ID: strings.Repeat("a", MaxProxyHeaderBytes)}); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("write over bound: %v", err)
	}
}

func TestRPCRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := &Bind{ID: "b", Proto: "tcp", Opts: []byte(`{"Addr":"x:1"}`)}
	if err := WriteRPC(&buf, in); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("}\n")) {
		t.Fatal("RPC must end with a newline like the SDK's encoder")
	}
	var out Bind
	if err := ReadRPC(&buf, &out, 0); err != nil {
		t.Fatal(err)
	}
	if out.ID != "b" || string(out.Opts) != `{"Addr":"x:1"}` {
		t.Fatalf("got %+v", out)
	}
}

func TestReadRPCBounds(t *testing.T) {
	big := `{"Error":"` + strings.Repeat("x", 2000) + `"}`
	var r errorResp
	if err := ReadRPC(strings.NewReader(big), &r, 1000); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("got %v", err)
	}
	if err := ReadRPC(strings.NewReader(big), &r, 5000); err != nil {
		t.Fatal(err)
	}
	if err := ReadRPC(strings.NewReader(`{"Error":1}`), &r, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v", err)
	}
	if err := ReadRPC(strings.NewReader(``), &r, 0); !errors.Is(err, io.EOF) {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkReadProxyHeader(b *testing.B) {
	var frame bytes.Buffer
	_ = WriteProxyHeader(&frame, &ProxyHeader{ID: "bind_2abcdef", ClientAddr: "203.0.113.7:51000", Proto: "https", EdgeType: "3"})
	raw := frame.Bytes()
	r := bytes.NewReader(raw)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(raw)
		if _, err := ReadProxyHeader(r); err != nil {
			b.Fatal(err)
		}
	}
}

func TestProxyHeaderJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uo\te`, "<a>&b", "ctl\x00\x01\x1f\b\f\n\r\t", "\u2028\u2029", "bad\xffutf8\xc3", "ünïcödé 日本"} {
		h := &ProxyHeader{ID: s, ClientAddr: s + "1", Proto: "tcp", EdgeType: s, PassthroughTLS: len(s)%2 == 0}
		want, _ := json.Marshal(h)
		if got := appendProxyHeaderJSON(nil, h); !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", s, got, want)
		}
	}
}

// FuzzProxyHeaderEncoding checks the hand-written encoder against
// encoding/json for any strings.
func FuzzProxyHeaderEncoding(f *testing.F) {
	f.Add("bind", "1.2.3.4:5", "https", "3", true)
	f.Add("\xff<\u2028", "\x00", `"`, `\`, false)
	f.Fuzz(func(t *testing.T, id, addr, proto, edge string, pt bool) {
		h := &ProxyHeader{ID: id, ClientAddr: addr, Proto: proto, EdgeType: edge, PassthroughTLS: pt}
		want, _ := json.Marshal(h)
		if got := appendProxyHeaderJSON(nil, h); !bytes.Equal(got, want) {
			t.Fatalf("got %s want %s", got, want)
		}
	})
}

func BenchmarkAppendProxyHeader(b *testing.B) {
	h := &ProxyHeader{ID: "bind_2abcdef", ClientAddr: "203.0.113.7:51000", Proto: "https", EdgeType: "3"}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendProxyHeader(buf[:0], h); err != nil {
			b.Fatal(err)
		}
	}
}
