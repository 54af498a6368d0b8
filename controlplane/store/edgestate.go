package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
)

// Edge state is what edges that run as their own processes report (their
// agent sessions, their liveness) and the operator commands queued for
// them. It is operational state, not a mutation: no revision bump, no audit
// event, no snapshot change. It lives in the store so that every
// control-plane process sharing the database answers the same
// (migrations 00006_edge_state.sql).

// EdgeState is one edge's latest report.
type EdgeState struct {
	// Info is the edge: ID, region, agent address and, in LastSeen, when it
	// last reported.
	Info snapshot.EdgeInfo
	// Sessions are its online agent sessions; nil unless asked for.
	Sessions []snapshot.AgentSession
	// PolledAt is when the edge last polled for commands; zero if it never
	// did (an edge that takes no commands).
	PolledAt time.Time
}

// PutEdgeReport replaces edge rep.EdgeID's report: its region, agent
// and edge-to-edge addresses and sessions, seen now.
func (s *Store) PutEdgeReport(ctx context.Context, rep snapshot.EdgeReport) error {
	sessions := rep.Sessions
	if sessions == nil {
		sessions = []snapshot.AgentSession{}
	}
	body, err := json.Marshal(sessions)
	if err != nil {
		return fmt.Errorf("encoding the sessions of edge %s: %w", rep.EdgeID, err)
	}
	_, err = s.wdb.ExecContext(ctx,
		`INSERT INTO edge_reports (edge_id, region, agent_addr, peer_addr, sessions, last_seen, polled_at)
		 VALUES ($1, $2, $3, $4, $5, $6, 0)
		 ON CONFLICT (edge_id) DO UPDATE SET region = excluded.region, agent_addr = excluded.agent_addr,
		     peer_addr = excluded.peer_addr, sessions = excluded.sessions, last_seen = excluded.last_seen`,
		rep.EdgeID, rep.Region, rep.AgentAddr, rep.PeerAddr, string(body), s.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("storing the report of edge %s: %w", rep.EdgeID, err)
	}
	return nil
}

// MarkEdgePolled records that edge edgeID polls for commands now. It
// reports whether the edge has a report (an edge without one must report
// first).
func (s *Store) MarkEdgePolled(ctx context.Context, edgeID string) (bool, error) {
	res, err := s.wdb.ExecContext(ctx, `UPDATE edge_reports SET polled_at = $1 WHERE edge_id = $2`,
		s.now().UnixMicro(), edgeID)
	if err != nil {
		return false, fmt.Errorf("marking the command poll of edge %s: %w", edgeID, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// DeleteEdgesSilentSince deletes the reports of edges that have not
// reported since cutoff, and the commands queued for them, and returns
// their IDs.
func (s *Store) DeleteEdgesSilentSince(ctx context.Context, cutoff time.Time) ([]string, error) {
	rows, err := s.wdb.QueryContext(ctx, `DELETE FROM edge_reports WHERE last_seen < $1 RETURNING edge_id`, cutoff.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("forgetting silent edges: %w", err)
	}
	var gone []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			_ = rows.Close()
			return nil, err
		}
		gone = append(gone, id)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	for _, id := range gone {
		if _, err := s.wdb.ExecContext(ctx, `DELETE FROM edge_commands WHERE edge_id = $1`, id); err != nil {
			return gone, fmt.Errorf("dropping the commands of edge %s: %w", id, err)
		}
	}
	return gone, rows.Err()
}

// DeleteEdgeCommandsQueuedBefore deletes the commands queued before t,
// answered or not: their API calls are over, and the process that queued
// them may have died before dropping them (Registry.Report calls it).
func (s *Store) DeleteEdgeCommandsQueuedBefore(ctx context.Context, t time.Time) error {
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM edge_commands WHERE created_at < $1`, t.UnixMicro()); err != nil {
		return fmt.Errorf("dropping old session commands: %w", err)
	}
	return nil
}

// DeleteEdgeReport deletes edge edgeID's report and queued commands.
func (s *Store) DeleteEdgeReport(ctx context.Context, edgeID string) error {
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM edge_reports WHERE edge_id = $1`, edgeID); err != nil {
		return fmt.Errorf("forgetting edge %s: %w", edgeID, err)
	}
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM edge_commands WHERE edge_id = $1`, edgeID); err != nil {
		return fmt.Errorf("dropping the commands of edge %s: %w", edgeID, err)
	}
	return nil
}

// EdgeStates returns the reports of edges seen at or after cutoff, ordered
// by region and ID; with sessions, their sessions too.
func (s *Store) EdgeStates(ctx context.Context, cutoff time.Time, sessions bool) ([]EdgeState, error) {
	cols := `edge_id, region, agent_addr, peer_addr, last_seen, polled_at, '[]'`
	if sessions {
		cols = `edge_id, region, agent_addr, peer_addr, last_seen, polled_at, sessions`
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+cols+` FROM edge_reports WHERE last_seen >= $1 ORDER BY region, edge_id`,
		cutoff.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("reading edge reports: %w", err)
	}
	defer rows.Close()
	var out []EdgeState
	for rows.Next() {
		var e EdgeState
		var seen, polled int64
		var body string
		if err := rows.Scan(&e.Info.ID, &e.Info.Region, &e.Info.AgentAddr, &e.Info.PeerAddr, &seen, &polled, &body); err != nil {
			return nil, fmt.Errorf("reading edge reports: %w", err)
		}
		e.Info.LastSeen, e.PolledAt = optMicros(seen), optMicros(polled)
		if sessions {
			if err := json.Unmarshal([]byte(body), &e.Sessions); err != nil {
				return nil, fmt.Errorf("decoding the sessions of edge %s: %w", e.Info.ID, err)
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// QueueEdgeCommand queues cmd for edge edgeID.
func (s *Store) QueueEdgeCommand(ctx context.Context, edgeID string, cmd snapshot.EdgeCommand) error {
	_, err := s.wdb.ExecContext(ctx,
		`INSERT INTO edge_commands (id, edge_id, verb, session_id, created_at, claimed_at, done_at, result_code, result_msg)
		 VALUES ($1, $2, $3, $4, $5, 0, 0, '', '')`,
		cmd.ID, edgeID, cmd.Verb, cmd.SessionID, s.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("queueing command %s for edge %s: %w", cmd.ID, edgeID, err)
	}
	return nil
}

// ClaimEdgeCommands takes the commands queued for edge edgeID, oldest
// first, marking them claimed. One statement (UPDATE ... RETURNING) both
// selects and claims, so with several control-plane processes polling for
// the same edge each command is delivered once: on PostgreSQL a concurrent
// claim waits on the row lock and then finds claimed_at set; SQLite has one
// writer.
func (s *Store) ClaimEdgeCommands(ctx context.Context, edgeID string) ([]snapshot.EdgeCommand, error) {
	// A read first: polls mostly find nothing, and should not take
	// SQLite's write lock for that.
	var one int
	err := s.rdb.QueryRowContext(ctx, `SELECT 1 FROM edge_commands WHERE edge_id = $1 AND claimed_at = 0 LIMIT 1`, edgeID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the commands of edge %s: %w", edgeID, err)
	}
	rows, err := s.wdb.QueryContext(ctx,
		`UPDATE edge_commands SET claimed_at = $1 WHERE edge_id = $2 AND claimed_at = 0
		 RETURNING id, verb, session_id, created_at`, s.now().UnixMicro(), edgeID)
	if err != nil {
		return nil, fmt.Errorf("claiming the commands of edge %s: %w", edgeID, err)
	}
	defer rows.Close()
	type row struct {
		cmd snapshot.EdgeCommand
		at  int64
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.cmd.ID, &r.cmd.Verb, &r.cmd.SessionID, &r.at); err != nil {
			return nil, fmt.Errorf("claiming the commands of edge %s: %w", edgeID, err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// RETURNING has no ORDER BY; order by queue time, then ID.
	for i := 1; i < len(got); i++ {
		for j := i; j > 0 && (got[j].at < got[j-1].at || got[j].at == got[j-1].at && got[j].cmd.ID < got[j-1].cmd.ID); j-- {
			got[j], got[j-1] = got[j-1], got[j]
		}
	}
	out := make([]snapshot.EdgeCommand, len(got))
	for i, r := range got {
		out[i] = r.cmd
	}
	return out, nil
}

// FinishEdgeCommand records the result an edge posted for one of its
// commands. It reports false when no such command is waiting (withdrawn,
// answered already, or another edge's).
func (s *Store) FinishEdgeCommand(ctx context.Context, res snapshot.EdgeCommandResult) (bool, error) {
	r, err := s.wdb.ExecContext(ctx,
		`UPDATE edge_commands SET done_at = $1, result_code = $2, result_msg = $3
		 WHERE id = $4 AND edge_id = $5 AND done_at = 0`,
		s.now().UnixMicro(), string(res.ErrorCode), res.Msg, res.ID, res.EdgeID)
	if err != nil {
		return false, fmt.Errorf("recording the result of command %s: %w", res.ID, err)
	}
	n, err := r.RowsAffected()
	return n > 0, err
}

// EdgeCommandResult returns the result of command id once its edge posted
// one (done true).
func (s *Store) EdgeCommandResult(ctx context.Context, id string) (res snapshot.EdgeCommandResult, done bool, err error) {
	var doneAt int64
	var code string
	err = s.rdb.QueryRowContext(ctx,
		`SELECT edge_id, done_at, result_code, result_msg FROM edge_commands WHERE id = $1`, id).
		Scan(&res.EdgeID, &doneAt, &code, &res.Msg)
	if err != nil {
		return res, false, commandErr(err, id)
	}
	res.ID, res.ErrorCode = id, codes.Code(code)
	return res, doneAt != 0, nil
}

// DeleteEdgeCommand drops command id, answered or not (the API call that
// queued it is over), and reports whether an edge had claimed it.
func (s *Store) DeleteEdgeCommand(ctx context.Context, id string) (claimed bool, err error) {
	var at int64
	err = s.wdb.QueryRowContext(ctx, `DELETE FROM edge_commands WHERE id = $1 RETURNING claimed_at`, id).Scan(&at)
	if err != nil {
		return false, commandErr(err, id)
	}
	return at != 0, nil
}

// commandErr wraps a failed read of command id; a missing row is
// ErrNotFound.
func commandErr(err error, id string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("command %s: %w", id, ErrNotFound)
	}
	return fmt.Errorf("reading command %s: %w", id, err)
}
