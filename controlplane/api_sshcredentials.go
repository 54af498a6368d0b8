package controlplane

import "net/http"

// sshCredentialRoutes registers /ssh_credentials.
func (s *Server) sshCredentialRoutes(mux *http.ServeMux) {}
