package agent

import (
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
)

// The inspector's page: server-rendered, one embedded stylesheet, no
// script, so the Content-Security-Policy forbids everything else. Forms
// carry a per-agent token so another site cannot make a browser replay or
// clear requests.

//go:embed webui/inspect.html webui/inspect.css
var webUI embed.FS

var (
	uiTemplates = template.Must(template.ParseFS(webUI, "webui/inspect.html"))
	uiCSS, _    = webUI.ReadFile("webui/inspect.css")
)

const (
	inspectPath = "/inspect"
	// uiCSP allows the stylesheet and same-origin forms, nothing else.
	uiCSP = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// routes adds the page's routes to mux.
func (in *inspector) routes(mux *http.ServeMux, src statusSource) {
	mux.HandleFunc("GET "+inspectPath+"/static/inspect.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(uiCSS)
	})
	mux.HandleFunc(inspectPath, func(w http.ResponseWriter, r *http.Request) {
		if allowGet(w, r) {
			in.renderList(w, src)
		}
	})
	mux.HandleFunc(inspectPath+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !allowGet(w, r) || !in.on(w) {
			return
		}
		c := in.ring.get(r.PathValue("id"))
		if c == nil {
			writeAPIError(w, http.StatusNotFound, codes.APINotFound, "no captured request with this id (the inspector keeps the newest ones only)", map[string]string{"id": r.PathValue("id")})
			return
		}
		in.renderDetail(w, http.StatusOK, c, src, "")
	})
	mux.HandleFunc(inspectPath+"/clear", func(w http.ResponseWriter, r *http.Request) {
		if !allowMethods(w, r, http.MethodPost) || !in.checkForm(w, r) || !in.on(w) {
			return
		}
		in.ring.clear()
		http.Redirect(w, r, inspectPath, http.StatusSeeOther)
	})
	mux.HandleFunc(inspectPath+"/replay", func(w http.ResponseWriter, r *http.Request) {
		if !allowMethods(w, r, http.MethodPost) || !in.checkForm(w, r) || !in.on(w) {
			return
		}
		in.replayForm(w, r, src)
	})
}

// checkForm checks the form token (TG_9014).
func (in *inspector) checkForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxReplayBody)
	if err := r.ParseForm(); err == nil && in.token != "" &&
		subtle.ConstantTimeCompare([]byte(r.PostFormValue("token")), []byte(in.token)) == 1 {
		return true
	}
	writeAPIError(w, http.StatusForbidden, codes.LocalFormToken,
		"this form did not come from the inspector's own page: reload the page and try again", nil)
	return false
}

// replayForm replays from the page and shows the new exchange, or the
// original one with the error.
func (in *inspector) replayForm(w http.ResponseWriter, r *http.Request, src statusSource) {
	var edit replayEdit
	if r.PostFormValue("edit") != "" {
		method, uri := r.PostFormValue("method"), r.PostFormValue("uri")
		edit.Method, edit.URI = &method, &uri
		h, err := parseHeaderLines(r.PostFormValue("headers"))
		if err != nil {
			in.replayFailed(w, r, src, http.StatusBadRequest, err.Error())
			return
		}
		edit.Headers = h
		if _, ok := r.PostForm["body"]; ok {
			body := r.PostFormValue("body")
			edit.Body = &body
		}
	}
	nc, err := in.replayByID(r, r.PostFormValue("id"), r.PostFormValue("tunnel_name"), edit)
	if err != nil {
		status := http.StatusInternalServerError
		if re, ok := err.(*replayError); ok {
			status = re.status
		}
		in.replayFailed(w, r, src, status, err.Error())
		return
	}
	http.Redirect(w, r, inspectPath+"/"+nc.ID, http.StatusSeeOther)
}

func (in *inspector) replayFailed(w http.ResponseWriter, r *http.Request, src statusSource, status int, msg string) {
	c := in.ring.get(r.PostFormValue("id"))
	if c == nil {
		writeAPIError(w, status, codes.APINotFound, msg, nil)
		return
	}
	in.renderDetail(w, status, c, src, "Replay failed: "+msg)
}

// parseHeaderLines reads "Name: value" lines (blank lines skipped).
func parseHeaderLines(s string) (http.Header, error) {
	h := http.Header{}
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(strings.TrimSpace(name)) {
			return nil, codes.NewError(codes.LocalBadRequest, "the header line %q is not of the form Name: value", line)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name)), strings.TrimSpace(value))
	}
	return h, nil
}

// uiRow is one exchange in the list.
type uiRow struct {
	ID, Time, Tunnel, Method, URI, Status, StatusClass, Duration, Size, ReplayOf string
	Upgraded                                                                     bool
}

func toUIRow(c *capture) uiRow {
	req := c.request()
	row := uiRow{ID: c.ID, Time: c.Start.Local().Format("15:04:05.000"), Tunnel: c.Tunnel, Method: req.Method,
		URI: req.URI, Status: "no response", StatusClass: "s0", Duration: formatDuration(c.Duration),
		ReplayOf: c.ReplayOf, Upgraded: c.Upgraded}
	if r := c.response(); r != nil {
		row.Status = r.Status
		row.StatusClass = "s" + strconv.Itoa(r.StatusCode/100)
		row.Size = formatBytes(r.BodySize)
	}
	return row
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + " µs"
	case d < 10*time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	}
	return d.Round(100 * time.Millisecond).String()
}

func formatBytes(n int64) string {
	switch {
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// httpEndpoints names the agent's HTTP endpoints.
func httpEndpoints(src statusSource) []string {
	var out []string
	for _, ep := range src.Endpoints() {
		if ep.Proto == config.ProtoHTTP || ep.Proto == config.ProtoHTTPS {
			out = append(out, ep.Name)
		}
	}
	return out
}

func (in *inspector) renderList(w http.ResponseWriter, src statusSource) {
	data := struct {
		Title, Token, Bytes string
		Refresh, Off        bool
		Count               int
		Rows                []uiRow
		Tunnels             []string
	}{Title: "Requests", Token: in.token, Refresh: in.ring != nil, Off: in.ring == nil, Tunnels: httpEndpoints(src)}
	if in.ring != nil {
		n, b := in.ring.stats()
		data.Count, data.Bytes = n, formatBytes(b)
		for _, c := range in.ring.newest(0, "") {
			data.Rows = append(data.Rows, toUIRow(c))
		}
	}
	renderPage(w, http.StatusOK, "list", data)
}

type uiHeader struct{ Name, Value string }

type uiBody struct {
	Text, Base64      string
	Binary, Truncated bool
	Size              int64
	Kept              int
}

type uiMessage struct {
	Title, First string
	Headers      []uiHeader
	Body         uiBody
}

func toUIMessage(title, first string, m *capturedMessage) uiMessage {
	out := uiMessage{Title: title, First: first,
		Body: uiBody{Binary: isBinary(m), Truncated: m.Truncated, Size: m.BodySize, Kept: len(m.Body)}}
	for _, k := range sortedKeys(m.Header) {
		for _, v := range m.Header[k] {
			out.Headers = append(out.Headers, uiHeader{k, v})
		}
	}
	if out.Body.Binary {
		out.Body.Base64 = base64.StdEncoding.EncodeToString(m.Body)
	} else {
		out.Body.Text = string(m.Body)
	}
	return out
}

func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (in *inspector) renderDetail(w http.ResponseWriter, status int, c *capture, src statusSource, errMsg string) {
	req := c.request()
	data := struct {
		Title, Token, Error, RemoteAddr, Note, HeadersText string
		Refresh, BodyEditable                              bool
		Row                                                uiRow
		Req, Resp                                          uiMessage
		Endpoints                                          []string
	}{Title: req.Method + " " + req.URI, Token: in.token, Error: errMsg, RemoteAddr: c.RemoteAddr, Note: c.Note,
		Row: toUIRow(c), Endpoints: httpEndpoints(src),
		Req: toUIMessage("Request", req.Method+" "+req.URI+" "+req.Proto, &req.capturedMessage)}
	data.BodyEditable = !data.Req.Body.Binary
	var hb strings.Builder
	for _, h := range data.Req.Headers {
		if !isHopByHop(h.Name) {
			hb.WriteString(h.Name + ": " + h.Value + "\n")
		}
	}
	data.HeadersText = hb.String()
	if r := c.response(); r != nil {
		data.Resp = toUIMessage("Response", r.Proto+" "+r.Status, &r.capturedMessage)
	} else {
		data.Resp = uiMessage{Title: "Response", First: "none: " + c.Note}
	}
	renderPage(w, status, "detail", data)
}

func isHopByHop(name string) bool {
	for _, k := range hopByHop {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

func renderPage(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := uiTemplates.ExecuteTemplate(&b, name, data); err != nil {
		writeAPIError(w, http.StatusInternalServerError, codes.Internal, "rendering the page failed: "+err.Error(), nil)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// hostGuard refuses requests whose Host is a name other than localhost
// (or webHost, the name the user gave --web-addr): a page of another site
// that resolves its own name to 127.0.0.1 (DNS rebinding) must not read
// the captured requests. IP literals pass. It guards only a loopback
// listener (on guard); one the user put on another address on purpose is
// reached by whatever name they use.
func hostGuard(next http.Handler, webHost string, on bool) http.Handler {
	if !on {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if host == "" || net.ParseIP(strings.Trim(host, "[]")) != nil || host == "localhost" ||
			strings.HasSuffix(host, ".localhost") || strings.EqualFold(host, webHost) {
			next.ServeHTTP(w, r)
			return
		}
		writeAPIError(w, http.StatusForbidden, codes.LocalHostRefused,
			"the agent's web address answers to localhost and IP addresses only; open it as http://127.0.0.1:PORT or http://localhost:PORT", map[string]string{"host": r.Host})
	})
}

// isLoopbackHost reports whether a listen host is a loopback address or
// localhost.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
