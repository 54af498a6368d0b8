package agent

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
)

// statusSource is what the inspection API reports on; *Agent implements it.
type statusSource interface {
	Endpoints() []EndpointStatus
	Status() Status
}

// apiTunnel is one endpoint in the inspection API, shaped like the hosted
// platform's agent API (GET /api/tunnels) so existing wrappers read it.
type apiTunnel struct {
	Name      string           `json:"name"`
	ID        string           `json:"ID,omitempty"`
	URI       string           `json:"uri"`
	PublicURL string           `json:"public_url"`
	Proto     string           `json:"proto"`
	State     string           `json:"state"`
	Config    apiTunnelConfig  `json:"config"`
	Metrics   apiTunnelMetrics `json:"metrics"`
}

type apiTunnelConfig struct {
	Addr    string `json:"addr"`
	Inspect bool   `json:"inspect"`
}

type apiTunnelMetrics struct {
	Conns apiConnMetrics `json:"conns"`
	Bytes apiByteMetrics `json:"bytes"`
}

type apiConnMetrics struct {
	Count int64 `json:"count"` // connections since start
	Gauge int64 `json:"gauge"` // connections open now
}

type apiByteMetrics struct {
	In  int64 `json:"in"`
	Out int64 `json:"out"`
}

type apiTunnelList struct {
	Tunnels []apiTunnel `json:"tunnels"`
	URI     string      `json:"uri"`
}

type apiStatus struct {
	State       string  `json:"state"`
	SessionID   string  `json:"session_id"`
	Region      string  `json:"region"`
	Transport   string  `json:"transport"`
	ServerAddr  string  `json:"server_addr"`
	LatencyMS   float64 `json:"latency_ms"`
	ConnectedAt string  `json:"connected_at,omitempty"`
	Version     string  `json:"version"`
	Tunnels     int     `json:"tunnels"`
	// Connections counts the online legs; Legs lists every leg (HA
	// connections, one per edge of the region).
	Connections int            `json:"connections"`
	RegionEdges int            `json:"region_edges"`
	Legs        []apiLegStatus `json:"legs"`
	URI         string         `json:"uri"`
}

// apiLegStatus is one leg in GET /api/status.
type apiLegStatus struct {
	Number      int     `json:"number"`
	State       string  `json:"state"`
	SessionID   string  `json:"session_id,omitempty"`
	EdgeID      string  `json:"edge_id,omitempty"`
	ServerAddr  string  `json:"server_addr,omitempty"`
	Transport   string  `json:"transport,omitempty"`
	LatencyMS   float64 `json:"latency_ms"`
	ConnectedAt string  `json:"connected_at,omitempty"`
}

type apiError struct {
	ErrorCode  string            `json:"error_code"`
	StatusCode int               `json:"status_code"`
	Msg        string            `json:"msg"`
	Details    map[string]string `json:"details"`
}

// newInspectHandler serves the agent's local web address: the JSON API,
//
//	GET /api/tunnels          {"tunnels":[...],"uri":"/api/tunnels"}
//	GET /api/tunnels/{name}   one tunnel
//	GET /api/status           the sessions: the first online leg's, and every leg
//	GET|DELETE|POST /api/requests/http, GET /api/requests/http/{id}
//	                          the request inspector (inspectapi.go)
//	GET /metrics, /healthz, /readyz   ops, when not nil (OpsHandler)
//
// and the inspector's page at /inspect (inspectui.go). Only endpoints that
// have a public URL are listed (wrappers poll until the list is non-empty
// and take public_url). Every error is JSON with an error_code. in nil
// means inspection is off.
func newInspectHandler(src statusSource, ops http.Handler, in *inspector) http.Handler {
	if in == nil {
		in = &inspector{}
	}
	mux := http.NewServeMux()
	if ops != nil {
		for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
			mux.Handle(p, ops)
		}
	}
	mux.HandleFunc("/api/tunnels", func(w http.ResponseWriter, r *http.Request) {
		if !allowGet(w, r) {
			return
		}
		list := apiTunnelList{Tunnels: []apiTunnel{}, URI: "/api/tunnels"}
		for _, ep := range src.Endpoints() {
			if ep.PublicURL != "" && ep.State != StateStopped {
				list.Tunnels = append(list.Tunnels, toAPITunnel(ep, in.ring != nil))
			}
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("/api/tunnels/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !allowGet(w, r) {
			return
		}
		name := r.PathValue("name")
		for _, ep := range src.Endpoints() {
			if ep.Name == name {
				writeJSON(w, http.StatusOK, toAPITunnel(ep, in.ring != nil))
				return
			}
		}
		writeAPIError(w, http.StatusNotFound, codes.APINotFound, "tunnel not found", map[string]string{"name": name})
	})
	mux.HandleFunc("/api/status", func(w http.ResponseWriter, r *http.Request) {
		if !allowGet(w, r) {
			return
		}
		st := src.Status()
		out := apiStatus{
			State:      st.State,
			SessionID:  st.SessionID,
			Region:     st.Region,
			Transport:  st.Transport,
			ServerAddr: st.ServerAddr,
			LatencyMS:  float64(st.Latency) / float64(time.Millisecond),
			Version:    st.Version,
			Tunnels:    len(src.Endpoints()),
			URI:        "/api/status",
		}
		if !st.ConnectedAt.IsZero() {
			out.ConnectedAt = st.ConnectedAt.UTC().Format(time.RFC3339)
		}
		out.Connections, out.RegionEdges = st.Connections, st.RegionEdges
		out.Legs = make([]apiLegStatus, 0, len(st.Legs))
		for _, l := range st.Legs {
			al := apiLegStatus{Number: l.Number, State: l.State, SessionID: l.SessionID, EdgeID: l.EdgeID,
				ServerAddr: l.ServerAddr, Transport: l.Transport, LatencyMS: float64(l.Latency) / float64(time.Millisecond)}
			if !l.ConnectedAt.IsZero() {
				al.ConnectedAt = l.ConnectedAt.UTC().Format(time.RFC3339)
			}
			out.Legs = append(out.Legs, al)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc(requestsPath, in.handleRequests)
	mux.HandleFunc(requestsPath+"/{id}", in.handleRequest)
	in.routes(mux, src)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			http.Redirect(w, r, inspectPath, http.StatusFound)
			return
		}
		writeAPIError(w, http.StatusNotFound, codes.APINotFound, "no such path; try /inspect, /api/tunnels, /api/status or /api/requests/http", map[string]string{"path": r.URL.Path})
	})
	return mux
}

// toAPITunnel converts ep; inspect says whether its requests are recorded
// (HTTP endpoints while inspection is on).
func toAPITunnel(ep EndpointStatus, inspect bool) apiTunnel {
	return apiTunnel{
		Name:      ep.Name,
		ID:        ep.TunnelID,
		URI:       "/api/tunnels/" + url.PathEscape(ep.Name),
		PublicURL: ep.PublicURL,
		Proto:     ep.Proto,
		State:     ep.State,
		Config:    apiTunnelConfig{Addr: ep.Upstream, Inspect: inspect && (ep.Proto == "https" || ep.Proto == "http")},
		Metrics: apiTunnelMetrics{
			Conns: apiConnMetrics{Count: ep.ConnsTotal, Gauge: ep.ConnsOpen},
			Bytes: apiByteMetrics{In: ep.BytesIn, Out: ep.BytesOut},
		},
	}
}

// allowGet answers 405 (TG_9008) to anything but GET and HEAD.
func allowGet(w http.ResponseWriter, r *http.Request) bool {
	return allowMethods(w, r, http.MethodGet, http.MethodHead)
}

// allowMethods answers 405 with TG_9008 and an Allow header to a method
// not in allowed.
func allowMethods(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for _, m := range allowed {
		if r.Method == m {
			return true
		}
	}
	list := strings.Join(allowed, ", ")
	w.Header().Set("Allow", list)
	writeAPIError(w, http.StatusMethodNotAllowed, codes.LocalMethod, "method "+r.Method+" not allowed here: use "+list,
		map[string]string{"method": r.Method, "path": r.URL.Path})
	return false
}

// writeAPIError writes the local API's error shape; every error carries a
// code.
func writeAPIError(w http.ResponseWriter, status int, code codes.Code, msg string, details map[string]string) {
	if details == nil {
		details = map[string]string{}
	}
	writeJSON(w, status, apiError{ErrorCode: string(code), StatusCode: status, Msg: msg, Details: details})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error_code":"TG_500","status_code":500,"msg":"encoding failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}
