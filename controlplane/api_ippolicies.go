package controlplane

import "net/http"

// ipPolicyRoutes registers /ip_policies, /ip_policy_rules and /ip_restrictions.
func (s *Server) ipPolicyRoutes(mux *http.ServeMux) {}
