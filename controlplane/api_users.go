package controlplane

import "net/http"

// userRoutes registers /users, /invitations and /accounts.
func (s *Server) userRoutes(mux *http.ServeMux) {}
