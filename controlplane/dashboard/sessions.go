package dashboard

import (
	"net/http"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/ids"
)

// dashRestartSession is POST /sessions/{id}/restart: the agent of the
// session is told to restart, through the edge that serves it, as with
// the API's POST /tunnel_sessions/{id}/restart (controlplane.Core.
// RunSessionCommand: read/write roles; an agent that cannot restart itself
// answers with its error). The overview then says so.
func (s *managePages) dashRestartSession(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := formID(r, "an agent session (ts_...)", ids.PrefixAgentSession)
	if err != nil {
		return err
	}
	if err := s.core.RunSessionCommand(r, &c.Caller, id, controlplane.RestartCommand); err != nil {
		return dashForbidden(err)
	}
	http.Redirect(w, r, doneURL("/", "session-restarting", id), http.StatusSeeOther)
	return nil
}
