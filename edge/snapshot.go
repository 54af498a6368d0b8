package edge

import (
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/snapshot"
)

// snapshotFile is the name of the persisted whole snapshot in the data dir;
// snapshotLogFile (snapshotlog.go) holds the deltas applied since.
const snapshotFile = "snapshot.json"

// snapshotHolder holds the newest snapshot the edge has seen. Reads are a
// single atomic load.
type snapshotHolder struct {
	cur     atomic.Pointer[snapshot.Snapshot]
	initial *snapshot.Snapshot // the empty snapshot the holder starts with
	disk    *snapshotPersister // nil = do not persist

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after each applied snapshot
}

func newSnapshotHolder(dataDir string, log *zap.Logger) *snapshotHolder {
	h := &snapshotHolder{changed: make(chan struct{})}
	if dataDir != "" {
		h.disk = newSnapshotPersister(dataDir, log)
	}
	h.initial, _ = snapshot.New(snapshot.Data{})
	h.cur.Store(h.initial)
	return h
}

// Load returns the current snapshot; never nil.
func (h *snapshotHolder) Load() *snapshot.Snapshot { return h.cur.Load() }

// ready reports whether the holder has a snapshot from the control plane
// or the data dir, rather than the empty one it starts with.
func (h *snapshotHolder) ready() bool { return h.cur.Load() != h.initial }

// Changed returns a channel closed once the next snapshot has been
// installed and applied. Take it before Load to miss nothing.
func (h *snapshotHolder) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

func (h *snapshotHolder) notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.changed)
	h.changed = make(chan struct{})
}

// loadPersisted reads the persisted snapshot and the deltas logged since, if
// there are any, and installs the result unless a snapshot from the control
// plane came first. A missing file is not an error; a corrupt one is
// reported and ignored; a torn log tail is dropped.
func (h *snapshotHolder) loadPersisted() (bool, error) {
	if h.disk == nil {
		return false, nil
	}
	s, err := h.disk.load()
	if err != nil || s == nil {
		return false, err
	}
	return h.cur.CompareAndSwap(h.initial, s), nil
}

// swap installs s if it is newer than the current snapshot. It reports
// whether s was installed.
func (h *snapshotHolder) swap(s *snapshot.Snapshot) bool {
	for {
		old := h.cur.Load()
		if s.Revision() <= old.Revision() && old.Revision() != 0 {
			return false
		}
		if h.cur.CompareAndSwap(old, s) {
			return true
		}
	}
}

// persist hands s to the background writer (snapshotlog.go).
func (h *snapshotHolder) persist(s *snapshot.Snapshot) {
	if h.disk != nil {
		h.disk.enqueue(s)
	}
}

// flush waits until every applied snapshot is on disk.
func (h *snapshotHolder) flush() {
	if h.disk != nil {
		h.disk.flush()
	}
}

// ApplySnapshot installs snap as the edge's snapshot, enforces it on live
// sessions (enforce) and then has it persisted in the data dir in the
// background (snapshotlog.go: a failure is logged; the edge keeps serving),
// when its revision is newer than the current
// one's — or older: the control plane answers with an older revision only
// when its store was reset or restored, and is the truth then. The current
// revision again is ignored. Calls must not overlap; edge/controlclient
// makes them from the goroutine that follows the feed.
func (e *Edge) ApplySnapshot(snap *snapshot.Snapshot) {
	h := e.snap
	if after := h.Load().Revision(); snap.Revision() < after {
		e.log.Warn("the control plane's snapshot is older than this edge's: its store was reset or restored; taking its snapshot",
			zap.Uint64("edge_revision", after), zap.Uint64("control_plane_revision", snap.Revision()))
		h.cur.Store(snap)
	} else if !h.swap(snap) {
		return
	}
	e.log.Debug("snapshot applied", zap.Uint64("revision", snap.Revision()))
	// Enforce first (revocations close sessions now), persist after, in
	// the background: the disk never delays a revocation.
	e.enforce(snap)
	e.leases.observe(snap) // holders another edge took over
	h.notify()
	h.persist(snap)
}

// enforce applies a new snapshot to live sessions: a credential that is
// gone, rotated or whose owner or account is inactive closes its sessions,
// and so does an agent IP restriction that now refuses a session's address
// (TG_115); endpoints its ACL no longer allows are stopped; attached
// sessions re-check themselves (sshserver calls RecheckAgentIP). The snapshot's IP restrictions are compiled here,
// once.
func (e *Edge) enforce(snap *snapshot.Snapshot) {
	e.gates.compile(snap)
	for _, s := range e.sessions.agentSessions() {
		lost, err := s.reverify(snap)
		if err != nil {
			s.log.Info("closing agent session: its credential is no longer valid", zap.Error(err))
			s.ts.Close(err)
			continue
		}
		if s.recheckAgentIP() {
			continue
		}
		for _, l := range lost {
			// The reason the bind would be refused now: a narrowed ACL, a
			// released or moved reservation.
			s.DropEndpoint(l.ep, l.err.Code, l.err.Message)
		}
	}
	for _, s := range e.sessions.attachedSessions() {
		s.Recheck(snap)
	}
}
