package agent

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Inspector defaults (docs/inspect.md).
const (
	DefaultInspectMaxRequests = 500
	DefaultInspectMaxBytes    = 32 << 20  // 32 MiB of captured heads and bodies
	DefaultInspectBodyLimit   = 128 << 10 // 128 KiB kept of each body
	// maxCapturedHead bounds one request or response head the inspector
	// parses; a longer one stops recording on that connection (the bytes
	// still flow).
	maxCapturedHead = 64 << 10
)

// InspectConfig configures the request inspector: the agent records each
// HTTP request through its HTTP endpoints (method, target, headers, body,
// and the upstream's response) in a bounded in-memory ring, served by the
// local API at /api/requests/http and the page at /inspect.
type InspectConfig struct {
	// Off turns recording off (the CLI's --inspect=false); the local API
	// then answers /api/requests/http with TG_9010. Without a web address
	// (Config.WebAddr "" or "false") nothing is recorded either.
	Off bool
	// MaxRequests is how many exchanges the ring keeps, newest first;
	// default DefaultInspectMaxRequests.
	MaxRequests int
	// MaxBytes bounds the bytes the ring holds (heads and kept bodies);
	// the oldest exchanges go first. Default DefaultInspectMaxBytes.
	MaxBytes int64
	// BodyLimit is how many bytes of each body are kept; the rest is
	// counted and the body marked truncated. Default
	// DefaultInspectBodyLimit.
	BodyLimit int
}

func (c InspectConfig) withDefaults() InspectConfig {
	if c.MaxRequests <= 0 {
		c.MaxRequests = DefaultInspectMaxRequests
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultInspectMaxBytes
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = DefaultInspectBodyLimit
	}
	return c
}

// rawMessage is a message as the inspector keeps it: the head bytes as
// received (first line and header fields, through the empty line) and the
// first bytes of the body. Heads are parsed only when read
// (request, response), so recording costs one copy per head.
type rawMessage struct {
	head      []byte
	body      []byte // the first BodyLimit bytes, de-chunked
	bodySize  int64  // body bytes seen in all
	truncated bool   // bodySize > len(body)
}

// capture is one recorded exchange. It is immutable once in the ring.
type capture struct {
	ID         string
	Tunnel     string // the endpoint's name
	RemoteAddr string // the public client's address; "" for a replay
	Start      time.Time
	Duration   time.Duration // request's first byte to the response's last (or its head, for 101)
	ReplayOf   string        // the ID this exchange replays; "" for tunnel traffic
	Upgraded   bool          // 101 Switching Protocols: what follows is not recorded
	Note       string        // why the exchange is incomplete, if it is

	req     rawMessage
	resp    *rawMessage // nil: the connection ended before a response; else &respMsg
	respMsg rawMessage

	// Bookkeeping of tapConn, under its mu.
	headReq, connectReq bool // the request's method is HEAD / CONNECT
	reqDone, respDone   bool
}

// capturedMessage is a parsed view of a rawMessage.
type capturedMessage struct {
	Proto     string      // "HTTP/1.1"
	Header    http.Header // keys canonical
	Body      []byte
	BodySize  int64
	Truncated bool
}

type capturedRequest struct {
	Method string
	URI    string // the request target as sent: /path?query
	capturedMessage
}

type capturedResponse struct {
	StatusCode int
	Status     string // "200 OK"
	capturedMessage
}

// request parses c's request.
func (c *capture) request() capturedRequest {
	first, m := c.req.parse()
	parts := strings.SplitN(first, " ", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	m.Proto = parts[2]
	return capturedRequest{Method: parts[0], URI: parts[1], capturedMessage: m}
}

// response parses c's response; nil when there is none.
func (c *capture) response() *capturedResponse {
	if c.resp == nil {
		return nil
	}
	first, m := c.resp.parse()
	proto, status, _ := strings.Cut(first, " ")
	m.Proto = proto
	code, _ := strconv.Atoi(strings.SplitN(status, " ", 2)[0])
	return &capturedResponse{StatusCode: code, Status: status, capturedMessage: m}
}

// parse splits m's head into its first line and header fields.
func (m *rawMessage) parse() (string, capturedMessage) {
	out := capturedMessage{Header: http.Header{}, Body: m.body, BodySize: m.bodySize, Truncated: m.truncated}
	first, rest, _ := bytes.Cut(m.head, []byte("\r\n"))
	if len(rest) > 0 {
		r := textproto.NewReader(bufio.NewReaderSize(bytes.NewReader(rest), len(rest)))
		if h, err := r.ReadMIMEHeader(); err == nil || len(h) > 0 {
			out.Header = http.Header(h)
		}
	}
	return string(first), out
}

// size is what c counts against InspectConfig.MaxBytes.
func (c *capture) size() int64 {
	n := int64(len(c.req.head) + len(c.req.body) + 128)
	if c.resp != nil {
		n += int64(len(c.resp.head) + len(c.resp.body))
	}
	return n
}

// captureRing is the inspector's bounded store: at most max exchanges and
// maxBytes bytes, oldest evicted first. Safe for concurrent use.
type captureRing struct {
	cfg    InspectConfig
	prefix string        // random per agent, so IDs do not repeat across runs
	seq    atomic.Uint64 // IDs

	mu    sync.Mutex
	list  []*capture // oldest first
	bytes int64
}

func newCaptureRing(cfg InspectConfig) *captureRing {
	return &captureRing{cfg: cfg.withDefaults(), prefix: randomHex(4)}
}

// nextID returns a new exchange ID, "req_" + 8 hex digits of the agent +
// a sequence number.
func (r *captureRing) nextID() string {
	var buf [32]byte // on the stack: one allocation, the string
	b := append(append(buf[:0], "req_"...), r.prefix...)
	return string(strconv.AppendUint(b, r.seq.Add(1), 10))
}

// add stores c, evicting the oldest exchanges beyond the bounds. An
// exchange larger than MaxBytes on its own is not kept.
func (r *captureRing) add(c *capture) {
	sz := c.size()
	r.mu.Lock()
	defer r.mu.Unlock()
	if sz > r.cfg.MaxBytes {
		return
	}
	r.list = append(r.list, c)
	r.bytes += sz
	drop := 0
	for len(r.list)-drop > r.cfg.MaxRequests || r.bytes > r.cfg.MaxBytes {
		r.bytes -= r.list[drop].size()
		r.list[drop] = nil
		drop++
	}
	// Re-slicing from the front copies nothing; append moves the kept
	// ones to a new array once the old one is used up (amortised O(1)).
	r.list = r.list[drop:]
}

// newest returns up to limit exchanges (all when limit <= 0), newest
// first, of the endpoint named tunnel ("" = every endpoint).
func (r *captureRing) newest(limit int, tunnel string) []*capture {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*capture, 0, min(len(r.list), max(limit, 0)))
	for i := len(r.list) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		if tunnel == "" || r.list[i].Tunnel == tunnel {
			out = append(out, r.list[i])
		}
	}
	return out
}

// get returns the exchange with id, or nil.
func (r *captureRing) get(id string) *capture {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.list {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// clear forgets every exchange.
func (r *captureRing) clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list, r.bytes = nil, 0
}

// stats returns how many exchanges and bytes the ring holds.
func (r *captureRing) stats() (n int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.list), r.bytes
}

// newMessage copies head into a new message whose buffer has room for
// the part of a Content-Length body the ring keeps, so that a small
// message costs one allocation.
func (r *captureRing) newMessage(head []byte, f framing) rawMessage {
	room := 0
	if f.length > 0 {
		room = int(min(f.length, int64(r.cfg.BodyLimit)))
	}
	buf := make([]byte, len(head), len(head)+room)
	copy(buf, head)
	return rawMessage{head: buf[:len(head):len(head)], body: buf[len(head):len(head)]}
}

// keep appends p to m's body up to limit bytes and counts it.
func (m *rawMessage) keep(p []byte, limit int) {
	m.bodySize += int64(len(p))
	if room := limit - len(m.body); room > 0 {
		m.body = append(m.body, p[:min(room, len(p))]...)
	}
	m.truncated = m.bodySize > int64(len(m.body))
}
