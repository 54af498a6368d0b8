package controlplane

import (
	"net/http"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"go.uber.org/zap"
)

// handlerFunc is an API operation. It returns an error to answer with
// (an *apiError, a store error or a *codes.Error) or nil after writing its
// response.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller) error

// methods maps HTTP methods to the operations of one path.
type methods map[string]handlerFunc

// routes builds the API's request router.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	for _, coll := range []string{"bot_users", "service_users"} {
		s.route(mux, "/"+coll, methods{
			http.MethodGet:  s.listBotUsers(coll),
			http.MethodPost: s.createBotUser(coll),
		})
		s.route(mux, "/"+coll+"/{id}", methods{
			http.MethodGet:    s.getBotUser(coll),
			http.MethodPatch:  s.updateBotUser(coll),
			http.MethodDelete: s.deleteBotUser,
		})
	}
	s.route(mux, "/api_keys", methods{http.MethodGet: s.listAPIKeys, http.MethodPost: s.createAPIKey})
	s.route(mux, "/api_keys/{id}", methods{http.MethodGet: s.getAPIKey, http.MethodPatch: s.updateAPIKey, http.MethodDelete: s.deleteAPIKey})
	s.route(mux, "/credentials", methods{http.MethodGet: s.listCredentials, http.MethodPost: s.createCredential})
	s.route(mux, "/credentials/{id}", methods{http.MethodGet: s.getCredential, http.MethodPatch: s.updateCredential, http.MethodDelete: s.deleteCredential})
	s.route(mux, "/tunnel_sessions", methods{http.MethodGet: s.listTunnelSessions})
	s.route(mux, "/tunnel_sessions/{id}", methods{http.MethodGet: s.getTunnelSession})
	s.route(mux, "/tunnel_sessions/{id}/stop", methods{http.MethodPost: s.stopTunnelSession})
	s.route(mux, "/tunnel_sessions/{id}/restart", methods{http.MethodPost: s.restartTunnelSession})
	s.route(mux, "/endpoints", methods{http.MethodGet: s.listEndpoints})
	s.route(mux, "/endpoints/{id}", methods{http.MethodGet: s.getEndpoint})
	s.sshCredentialRoutes(mux)
	s.reservationRoutes(mux)
	s.ipPolicyRoutes(mux)
	s.userRoutes(mux)
	s.auditRoutes(mux)
	s.edgeRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, func(http.ResponseWriter, *http.Request, *caller) error {
			return newAPIError(http.StatusNotFound, codes.APINotFound,
				"There is no API resource at %s. Check the path against the API reference.", truncate(r.URL.Path, 200))
		}, false)
	})
	return mux
}

// route registers the operations of one path; other methods get 405.
func (s *Server) route(mux *http.ServeMux, pattern string, m methods) {
	allowed := make([]string, 0, len(m))
	for k := range m {
		allowed = append(allowed, k)
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			s.serve(w, r, func(http.ResponseWriter, *http.Request, *caller) error {
				return newAPIError(http.StatusMethodNotAllowed, codes.APIMethodNotAllowed,
					"%s does not support %s; use %s.", pattern, r.Method, allow)
			}, false)
			return
		}
		s.serve(w, r, h, true)
	})
}

// serve runs one API operation: it assigns the operation ID, checks the
// version header, authenticates (when auth is true), and turns a returned
// error or a panic into the API's error body.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, h handlerFunc, auth bool) {
	opID := ids.New(ids.PrefixOperation)
	w.Header().Set("Tollgate-Operation-Id", opID)
	var c *caller
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("API operation panicked", zap.String("operation_id", opID), zap.Any("panic", p), zap.Stack("stack"))
			s.writeError(w, r, opID, c, newAPIError(http.StatusInternalServerError, codes.Internal,
				"The control plane failed to handle this request. Retry; report the operation ID if it persists."))
		}
	}()
	err := checkVersion(r)
	if err == nil {
		c, err = s.admit(w, r, auth) // authenticates when auth; rate limits (ratelimit.go)
	}
	if err == nil && c != nil {
		err = s.checkAPIRestriction(r, c) // the account's api IP restrictions (iprestrict.go)
	}
	if err == nil {
		err = h(w, r, c)
	}
	if err != nil {
		s.writeError(w, r, opID, c, err)
	}
}

// checkVersion accepts requests without a version header and those that ask
// for version 2 (Ngrok-Version, as the hosted platform's clients send it).
func checkVersion(r *http.Request) error {
	v := r.Header.Get("Ngrok-Version")
	if v == "" || v == "2" {
		return nil
	}
	return badRequest(codes.APIVersion, "API version %q is not supported: send Ngrok-Version: 2, or no version header.", truncate(v, 20))
}

// baseURL is the URL prefix of object URIs.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return strings.TrimRight(s.cfg.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
