package agent

import "sync/atomic"

// endpointSet is the agent's endpoints and how proxy streams reach them:
// the bind ID → endpoint map the accept loops read, and the wake-up that
// tells live legs an endpoint is bound on no leg. list is fixed when the
// Agent is made; each endpoint's state is under its own lock.
type endpointSet struct {
	list    []*endpoint
	routes  atomic.Pointer[map[string]*endpoint] // bind ID → endpoint
	orphans wakeup                               // fired when an endpoint is left bound on no leg
}

// rebuildRoutes publishes the bind ID → endpoint map of the endpoints
// that are not stopped.
func (s *endpointSet) rebuildRoutes() {
	m := make(map[string]*endpoint, len(s.list))
	for _, ep := range s.list {
		ep.mu.Lock()
		if ep.bindID != "" && ep.state != StateStopped {
			m[ep.bindID] = ep
		}
		ep.mu.Unlock()
	}
	s.routes.Store(&m)
}

// hasOrphans reports whether an endpoint that was bound, and not stopped,
// is bound on no leg.
func (s *endpointSet) hasOrphans() bool {
	for _, ep := range s.list {
		ep.mu.Lock()
		orphan := ep.on == 0 && ep.publicURL != "" && ep.state != StateStopped
		ep.mu.Unlock()
		if orphan {
			return true
		}
	}
	return false
}
