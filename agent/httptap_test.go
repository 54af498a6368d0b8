package agent

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// feed writes s to tap in pieces of n bytes (n <= 0: at once).
func feed(tap *msgTap, s string, n int) {
	if n <= 0 {
		tap.Write([]byte(s))
		return
	}
	for len(s) > 0 {
		k := min(n, len(s))
		tap.Write([]byte(s[:k]))
		s = s[k:]
	}
}

// tapExchange runs one connection's two directions through a tapConn and
// returns what the ring holds, oldest first.
func tapExchange(t *testing.T, cfg InspectConfig, reqs, resps string, piece int) []*capture {
	t.Helper()
	ring := newCaptureRing(cfg)
	c := ring.newConn("web", "203.0.113.9:5555")
	rq, rs := c.taps()
	feed(rq, reqs, piece)
	feed(rs, resps, piece)
	c.close(rq, rs)
	got := ring.newest(0, "")
	for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
		got[i], got[j] = got[j], got[i]
	}
	return got
}

func TestTapFraming(t *testing.T) {
	reqs := "\r\nPOST /a?x=1 HTTP/1.1\r\nHost: web.example\r\nContent-Length: 5\r\n\r\nhello" +
		"PUT /b HTTP/1.1\r\nHost: web.example\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n" +
		"HEAD /c HTTP/1.1\r\nHost: web.example\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: web.example\r\n\r\n" +
		"GET /e HTTP/1.1\r\nHost: web.example\r\n\r\n"
	resps := "HTTP/1.1 100 Continue\r\n\r\n" +
		"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n" + // HEAD: no body despite the length
		"HTTP/1.1 204 No Content\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
	for _, piece := range []int{0, 1, 3, 7} {
		got := tapExchange(t, InspectConfig{}, reqs, resps, piece)
		want := []struct{ method, uri, reqBody, status, respBody string }{
			{"POST", "/a?x=1", "hello", "201 Created", "ok"},
			{"PUT", "/b", "abcde", "200 OK", "wxyz"},
			{"HEAD", "/c", "", "200 OK", ""},
			{"GET", "/d", "", "204 No Content", ""},
			{"GET", "/e", "", "200 OK", "until the end"},
		}
		if len(got) != len(want) {
			t.Fatalf("piece %d: %d exchanges, want %d", piece, len(got), len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.request().Method != w.method || g.request().URI != w.uri || string(g.request().Body) != w.reqBody || g.response() == nil ||
				g.response().Status != w.status || string(g.response().Body) != w.respBody || g.Tunnel != "web" || g.RemoteAddr != "203.0.113.9:5555" {
				t.Fatalf("piece %d, exchange %d: %+v %+v, want %+v", piece, i, g.request(), g.response(), w)
			}
		}
		if got[0].request().Header.Get("Host") != "web.example" || got[1].request().Header.Get("Transfer-Encoding") != "chunked" {
			t.Fatalf("headers: %v %v", got[0].request().Header, got[1].request().Header)
		}
	}
}

func TestTapUpgradeStopsRecording(t *testing.T) {
	reqs := "GET /ws HTTP/1.1\r\nHost: web.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
		"\x81\x85frame-bytes-GET / HTTP/1.1\r\n\r\n"
	resps := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
		"\x81\x05HTTP/1.1 200 OK\r\n\r\n"
	got := tapExchange(t, InspectConfig{}, reqs, resps, 2)
	if len(got) != 1 || got[0].response() == nil || got[0].response().StatusCode != 101 || !got[0].Upgraded {
		t.Fatalf("got %d exchanges: %+v", len(got), got)
	}
	if len(got[0].request().Body) != 0 || len(got[0].response().Body) != 0 || got[0].Note != "" {
		t.Fatalf("frames were recorded: %+v", got[0])
	}
}

func TestTapIncomplete(t *testing.T) {
	// A request whose upstream closed without answering, and a body cut
	// short.
	got := tapExchange(t, InspectConfig{}, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", "", 0)
	if len(got) != 1 || got[0].response() != nil || !strings.Contains(got[0].Note, "before a response") {
		t.Fatalf("no response: %+v", got)
	}
	got = tapExchange(t, InspectConfig{}, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0)
	if len(got) != 1 || got[0].response() == nil || string(got[0].response().Body) != "abc" || !strings.Contains(got[0].Note, "during the response") {
		t.Fatalf("cut short: %+v", got)
	}
	// Not HTTP at all: nothing recorded, nothing breaks.
	got = tapExchange(t, InspectConfig{}, "\x16\x03\x01 binary\r\n\r\n", "junk\r\n\r\n", 0)
	if len(got) != 0 {
		t.Fatalf("garbage recorded: %+v", got)
	}
}

func TestCaptureRingBounds(t *testing.T) {
	// Bodies past the limit are truncated and say so.
	body := strings.Repeat("b", 100)
	got := tapExchange(t, InspectConfig{BodyLimit: 10}, "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n"+body,
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\x00\x01\x02", 0)
	if len(got) != 1 || string(got[0].request().Body) != body[:10] || got[0].request().BodySize != 100 || !got[0].request().Truncated {
		t.Fatalf("truncation: %+v", got[0].request())
	}
	api := toAPIRequest(got[0])
	if !api.Request.BodyTruncated || api.Request.BodySize != 100 || api.Request.BodyBinary || api.Request.Body != body[:10] {
		t.Fatalf("API request body: %+v", api.Request.apiBody)
	}
	if r := api.Response; r == nil || !r.BodyBinary || r.BodyEncoding != "base64" || r.Body != "AAEC" || r.BodyTruncated {
		t.Fatalf("API response body: %+v", api.Response)
	}

	// By count: the newest MaxRequests stay.
	ring := newCaptureRing(InspectConfig{MaxRequests: 3})
	var ids []string
	for i := 0; i < 5; i++ {
		c := &capture{ID: ring.nextID(), Tunnel: "web", req: rawMessage{head: []byte("GET / HTTP/1.1\r\n\r\n")}}
		ids = append(ids, c.ID)
		ring.add(c)
	}
	if l := ring.newest(0, ""); len(l) != 3 || l[0].ID != ids[4] || l[2].ID != ids[2] || ring.get(ids[1]) != nil {
		t.Fatalf("count bound: kept %d", len(l))
	}
	if l := ring.newest(2, "web"); len(l) != 2 {
		t.Fatalf("limit 2: %d", len(l))
	}
	if l := ring.newest(0, "other"); len(l) != 0 {
		t.Fatalf("tunnel filter: %d", len(l))
	}

	// By bytes: big exchanges push the old ones out; one bigger than the
	// whole budget is not kept.
	ring = newCaptureRing(InspectConfig{MaxBytes: 3000})
	big := func() *capture {
		return &capture{ID: ring.nextID(), req: rawMessage{body: make([]byte, 1000)}}
	}
	for i := 0; i < 5; i++ {
		ring.add(big())
	}
	if n, b := ring.stats(); n != 2 || b > 3000 {
		t.Fatalf("bytes bound: %d exchanges, %d bytes", n, b)
	}
	huge := &capture{ID: ring.nextID(), req: rawMessage{body: make([]byte, 4000)}}
	ring.add(huge)
	if ring.get(huge.ID) != nil {
		t.Fatal("an exchange over the byte budget was kept")
	}
	ring.clear()
	if n, b := ring.stats(); n != 0 || b != 0 {
		t.Fatalf("after clear: %d, %d", n, b)
	}
}

// Many keep-alive requests on one forwarded connection are all recorded:
// the upstream's answer never reaches the response tap before the request
// tap has seen the request (which once stopped recording after a few
// requests).
func TestInspectorKeepAliveThroughForwarder(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	f := newTestForwarder(t, "http", strings.TrimPrefix(up.URL, "http://"), false)
	f.rec = newCaptureRing(InspectConfig{MaxRequests: 100})
	client, done := serveAsync(t, f)
	_ = client.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(client)
	const n = 1000
	for i := 0; i < n; i++ {
		if _, err := io.WriteString(client, "POST /n HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	client.Close()
	<-done
	if kept, _ := f.rec.stats(); f.rec.seq.Load() != n || kept != 100 {
		t.Fatalf("%d of %d requests recorded, %d kept (want 100)", f.rec.seq.Load(), n, kept)
	}
	if l := f.rec.newest(1, ""); string(l[0].request().Body) != "body" || l[0].response() == nil || string(l[0].response().Body) != "ok" {
		t.Fatalf("last exchange: %+v", l[0])
	}
}

// A head the inspector cannot follow stops recording and says why; the
// exchange is still listed.
func TestTapGivesUpWithReason(t *testing.T) {
	got := tapExchange(t, InspectConfig{}, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nbody", 0)
	if len(got) != 1 || got[0].response() != nil || !strings.Contains(got[0].Note, "stopped following") {
		t.Fatalf("got %+v", got)
	}
	long := "GET /x HTTP/1.1\r\nX-Big: " + strings.Repeat("a", maxCapturedHead) + "\r\n\r\n"
	if got := tapExchange(t, InspectConfig{}, long, "HTTP/1.1 200 OK\r\n\r\n", 1000); len(got) != 0 {
		t.Fatalf("an over-long head was recorded: %d", len(got))
	}
}
