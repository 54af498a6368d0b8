package dashboard

import "net/http"

// manageRoutes registers the pages and form actions that manage the
// account's objects as the REST API does: reservations, IP policies,
// rules and restrictions, SSH keys, bot users' credentials, members, agent
// session restarts, and the audit log.
func (s *Server) manageRoutes(mux *http.ServeMux) {
	manage := &managePages{s}
	mux.HandleFunc("POST /reservations/domains", s.dashServe(manage.dashReserveDomain))
	mux.HandleFunc("POST /reservations/addrs", s.dashServe(manage.dashReserveAddr))
	mux.HandleFunc("POST /reservations/{id}/delete", s.dashServe(manage.dashReleaseReservation))

	mux.HandleFunc("POST /ip-policies", s.dashServe(manage.dashCreateIPPolicy))
	mux.HandleFunc("POST /ip-policies/{id}", s.dashServe(manage.dashUpdateIPPolicy))
	mux.HandleFunc("POST /ip-policies/{id}/delete", s.dashServe(manage.dashDeleteIPPolicy))
	mux.HandleFunc("POST /ip-policies/{id}/rules", s.dashServe(manage.dashCreateIPPolicyRule))
	mux.HandleFunc("POST /ip-policy-rules/{id}", s.dashServe(manage.dashUpdateIPPolicyRule))
	mux.HandleFunc("POST /ip-policy-rules/{id}/delete", s.dashServe(manage.dashDeleteIPPolicyRule))
	mux.HandleFunc("POST /ip-restrictions", s.dashServe(manage.dashCreateIPRestriction))
	mux.HandleFunc("POST /ip-restrictions/{id}", s.dashServe(manage.dashUpdateIPRestriction))
	mux.HandleFunc("POST /ip-restrictions/{id}/enforced", s.dashServe(manage.dashSetIPRestrictionEnforced))
	mux.HandleFunc("POST /ip-restrictions/{id}/delete", s.dashServe(manage.dashDeleteIPRestriction))

	mux.HandleFunc("POST /credentials/ssh-keys", s.dashServe(manage.dashAddSSHKey))
	mux.HandleFunc("GET /bot-users/{id}", s.dashServe(viewPage(s, "bot-user", "Bot user", manage.botView)))
	mux.HandleFunc("POST /bot-users/{id}/api-keys", s.dashServe(manage.dashCreateBotAPIKey))
	mux.HandleFunc("POST /bot-users/{id}/ssh-keys", s.dashServe(manage.dashAddBotSSHKey))

	mux.HandleFunc("POST /users/{id}/roles", s.dashServe(manage.dashUpdateMember))
	mux.HandleFunc("POST /users/{id}/remove", s.dashServe(manage.dashRemoveMember))

	mux.HandleFunc("POST /sessions/{id}/restart", s.dashServe(manage.dashRestartSession))
	mux.HandleFunc("GET /audit", s.dashServe(manage.dashAudit))
}
