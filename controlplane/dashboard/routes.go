package dashboard

import "net/http"

// manageRoutes registers the pages and form actions that manage the
// account's objects as the REST API does: reservations, IP policies,
// rules and restrictions, SSH keys, bot users' credentials, members, agent
// session restarts, and the audit log.
func (s *Server) manageRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /reservations/domains", s.dashServe(s.dashReserveDomain))
	mux.HandleFunc("POST /reservations/addrs", s.dashServe(s.dashReserveAddr))
	mux.HandleFunc("POST /reservations/{id}/delete", s.dashServe(s.dashReleaseReservation))

	mux.HandleFunc("POST /ip-policies", s.dashServe(s.dashCreateIPPolicy))
	mux.HandleFunc("POST /ip-policies/{id}", s.dashServe(s.dashUpdateIPPolicy))
	mux.HandleFunc("POST /ip-policies/{id}/delete", s.dashServe(s.dashDeleteIPPolicy))
	mux.HandleFunc("POST /ip-policies/{id}/rules", s.dashServe(s.dashCreateIPPolicyRule))
	mux.HandleFunc("POST /ip-policy-rules/{id}", s.dashServe(s.dashUpdateIPPolicyRule))
	mux.HandleFunc("POST /ip-policy-rules/{id}/delete", s.dashServe(s.dashDeleteIPPolicyRule))
	mux.HandleFunc("POST /ip-restrictions", s.dashServe(s.dashCreateIPRestriction))
	mux.HandleFunc("POST /ip-restrictions/{id}", s.dashServe(s.dashUpdateIPRestriction))
	mux.HandleFunc("POST /ip-restrictions/{id}/enforced", s.dashServe(s.dashSetIPRestrictionEnforced))
	mux.HandleFunc("POST /ip-restrictions/{id}/delete", s.dashServe(s.dashDeleteIPRestriction))

	mux.HandleFunc("POST /credentials/ssh-keys", s.dashServe(s.dashAddSSHKey))
	mux.HandleFunc("GET /bot-users/{id}", s.dashServe(viewPage(s, "bot-user", "Bot user", s.botView)))
	mux.HandleFunc("POST /bot-users/{id}/api-keys", s.dashServe(s.dashCreateBotAPIKey))
	mux.HandleFunc("POST /bot-users/{id}/ssh-keys", s.dashServe(s.dashAddBotSSHKey))

	mux.HandleFunc("POST /users/{id}/roles", s.dashServe(s.dashUpdateMember))
	mux.HandleFunc("POST /users/{id}/remove", s.dashServe(s.dashRemoveMember))

	mux.HandleFunc("POST /sessions/{id}/restart", s.dashServe(s.dashRestartSession))
	mux.HandleFunc("GET /audit", s.dashServe(s.dashAudit))
}
