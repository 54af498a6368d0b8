package controlplane

import "net/http"

// reservationRoutes registers /reserved_domains and /reserved_addrs.
func (s *Server) reservationRoutes(mux *http.ServeMux) {}
