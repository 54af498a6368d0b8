package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Traffic events in the outbox (docs/events.md#traffic-events).
//
// Traffic events come from edges in batches (controlplane/events
// IngestTraffic). A batch does not bump the store revision (that would
// make every edge rebuild its snapshot once a second): it takes the
// revision row's lock without changing its value, so it serialises with
// audit writers as they do with each other, and writes its rows at the
// committed revision R, at idx trafficIdxBase and above. A reader that has
// seen a position at R has seen every committed row of R below
// trafficIdxBase; a later audit writer uses R+1. So positions still grow
// in commit order.

// OutboxSourceTraffic marks outbox rows of traffic events from edges.
const OutboxSourceTraffic = "traffic"

// trafficIdxBase is the first idx of traffic rows within a revision; audit
// rows of one unit of work stay below it.
const trafficIdxBase = 1 << 20

// TrafficEvent is one outbox row of traffic events of one account and
// type, in one of two forms:
//   - one event: Packed nil, its JSON payload (the event as delivered
//     before field selection) in Payload;
//   - Count events packed: Packed holds them in controlplane/events'
//     encoding (the store keeps it opaque), Payload is empty. Count is 1
//     to MaxPackedEvents.
//
// ID is the stable ID (derived from the edge's batch, so a retried batch
// has the same IDs) of the row's first event: a row whose ID is already
// in the outbox is a duplicate. At is the time of the event, or of the
// earliest event of a packed row (what lag and expiry count from).
type TrafficEvent struct {
	ID        string
	AccountID string
	Type      string
	Payload   []byte
	Packed    []byte
	Count     int
	At        time.Time
}

// MaxPackedEvents is the most events one packed row may hold: a cursor
// inside a row lies fewer positions than this after its start, which
// bounds ReadOutbox's index range.
const MaxPackedEvents = 8192

// events returns how many events the row holds.
func (ev *TrafficEvent) events() int {
	if ev.Packed == nil {
		return 1
	}
	return ev.Count
}

// TrafficWrite is the outcome of AppendTrafficEvents, in events.
type TrafficWrite struct {
	Written    int // new events
	Duplicates int // events of rows already in the outbox (a retried batch)
	Dropped    int // refused because the account's traffic events were at the cap
}

// AppendTrafficEvents writes rows of traffic events to the outbox in one
// transaction; each takes as many positions as it holds events. room says
// how many more traffic events each account may have in the outbox
// (TrafficRows against the cap); an account's rows past its room, or of
// an account not in room, are dropped whole (the newest are refused, the
// queue is not reordered) and their events counted in the result. A row
// whose ID is already in the outbox is skipped: a retried batch is
// written once. A nil room means no cap. Errors: a packed row with a
// Count outside 1…MaxPackedEvents writes nothing; else the database's.
func (s *Store) AppendTrafficEvents(ctx context.Context, evs []TrafficEvent, room map[string]int) (TrafficWrite, error) {
	var res TrafficWrite
	var keep []TrafficEvent
	used := map[string]int{}
	total := 0
	for _, ev := range evs {
		if ev.Packed != nil && (ev.Count < 1 || ev.Count > MaxPackedEvents) {
			return TrafficWrite{}, fmt.Errorf("a packed traffic row holds %d events; want 1 to %d", ev.Count, MaxPackedEvents)
		}
		n := ev.events()
		if room != nil && used[ev.AccountID]+n > room[ev.AccountID] {
			res.Dropped += n
			continue
		}
		used[ev.AccountID] += n
		keep = append(keep, ev)
		total += n
	}
	if len(keep) == 0 {
		return res, nil
	}
	// The statements first: preparing one needs the writer connection,
	// which the transaction then holds.
	stmts := map[int]*sql.Stmt{}
	for left := len(keep); left > 0; {
		n := trafficChunk(left)
		if stmts[n] == nil {
			st, err := s.trafficInsert(ctx, n)
			if err != nil {
				return res, err
			}
			stmts[n] = st
		}
		left -= n
	}
	sqlTx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() { _ = sqlTx.Rollback() }()
	var rev int64
	// The revision row's lock, its value unchanged.
	if err := sqlTx.QueryRowContext(ctx, `UPDATE revision SET value = value WHERE id = 1 RETURNING value`).Scan(&rev); err != nil {
		return res, fmt.Errorf("locking the store revision: %w", err)
	}
	// The last position taken at rev: the end of the traffic row with the
	// highest idx (the primary key's order).
	last := trafficIdxBase - 1
	err = sqlTx.QueryRowContext(ctx, `SELECT idx + n - 1 FROM event_outbox WHERE revision = $1 AND idx >= $2 ORDER BY idx DESC LIMIT 1`,
		rev, trafficIdxBase).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return res, fmt.Errorf("reading the outbox position: %w", err)
	}
	if last+total >= maxOutboxIdx {
		res.Dropped += total
		return res, nil
	}
	// Multi-row INSERTs (trafficChunks rows each, prepared once per
	// store): far fewer statements than rows when rows hold one event
	// each. Each row takes the next positions; a duplicate (ON CONFLICT)
	// leaves a gap, which positions allow. RETURNING names the rows
	// written, to count their events.
	counts := make(map[string]int, len(keep))
	for start := 0; start < len(keep); {
		n := trafficChunk(len(keep) - start)
		args := make([]any, 0, n*trafficInsertCols)
		for _, ev := range keep[start : start+n] {
			payload := string(ev.Payload)
			var packed any
			if ev.Packed != nil {
				payload, packed = "", ev.Packed
			}
			args = append(args, rev, last+1, ev.ID, ev.AccountID, OutboxSourceTraffic, ev.Type, payload, ev.At.UnixMicro(), ev.events(), packed)
			last += ev.events()
			counts[ev.ID] = ev.events()
		}
		rows, err := sqlTx.StmtContext(ctx, stmts[n]).QueryContext(ctx, args...)
		if err != nil {
			return TrafficWrite{}, fmt.Errorf("writing traffic events to the outbox: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return TrafficWrite{}, fmt.Errorf("writing traffic events to the outbox: %w", err)
			}
			res.Written += counts[id]
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return TrafficWrite{}, fmt.Errorf("writing traffic events to the outbox: %w", err)
		}
		start += n
	}
	res.Duplicates = total - res.Written
	if err := sqlTx.Commit(); err != nil {
		return TrafficWrite{}, fmt.Errorf("committing traffic events: %w", err)
	}
	if res.Written > 0 {
		s.notify()
	}
	return res, nil
}

// trafficChunks are the row counts of the traffic INSERTs, largest first:
// a batch is written in as many of the largest as fit, then smaller ones.
// 500 rows of 10 parameters stay within SQLite's 32766 and PostgreSQL's
// 65535 parameters.
var trafficChunks = []int{500, 100, 20, 1}

const trafficInsertCols = 10

// trafficChunk returns the row count of the next INSERT for n rows left.
func trafficChunk(n int) int {
	for _, c := range trafficChunks {
		if c <= n {
			return c
		}
	}
	return 1
}

// trafficInsert returns the store's prepared INSERT of n traffic rows.
func (s *Store) trafficInsert(ctx context.Context, n int) (*sql.Stmt, error) {
	if st, ok := s.trafficStmts.Load(n); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.wdb.PrepareContext(ctx, trafficInsertSQL(s.dialect, n))
	if err != nil {
		return nil, fmt.Errorf("preparing the traffic insert: %w", err)
	}
	if prev, loaded := s.trafficStmts.LoadOrStore(n, st); loaded {
		_ = st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// trafficInsertSQL returns the INSERT of n traffic rows: numbered
// parameters ($1…$10n) for PostgreSQL, positional ones (?) for SQLite,
// whose driver looks each numbered parameter up among all the arguments
// (quadratic in a statement of thousands).
func trafficInsertSQL(d Dialect, n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO event_outbox (revision, idx, id, account_id, source, type, payload, created_at, n, packed) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range trafficInsertCols {
			if c > 0 {
				b.WriteByte(',')
			}
			if d == SQLite {
				b.WriteByte('?')
			} else {
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(i*trafficInsertCols + c + 1))
			}
		}
		b.WriteByte(')')
	}
	b.WriteString(` ON CONFLICT (id) DO NOTHING RETURNING id`)
	return b.String()
}

// TrafficRows returns how many traffic events the account's rows in the
// outbox hold, delivered or not (PruneOutbox removes delivered ones).
func (s *Store) TrafficRows(ctx context.Context, accountID string) (int, error) {
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0) FROM event_outbox WHERE account_id = $1 AND source = $2`,
		accountID, OutboxSourceTraffic).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting traffic events of %s: %w", accountID, err)
	}
	return n, nil
}

// TrafficWants returns, per account, the traffic event types (among types)
// that some source of one of its subscriptions selects, where that
// subscription names at least one destination: what edges should send.
func (s *Store) TrafficWants(ctx context.Context, types []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, typ := range types {
		rows, err := s.rdb.QueryContext(ctx, `SELECT DISTINCT sub.account_id FROM event_sources src
			JOIN event_subscriptions sub ON sub.id = src.subscription_id
			WHERE src.type = $1 AND EXISTS (SELECT 1 FROM event_subscription_destinations d WHERE d.subscription_id = sub.id)`, typ)
		if err != nil {
			return nil, fmt.Errorf("reading traffic sources: %w", err)
		}
		for rows.Next() {
			var acct string
			if err := rows.Scan(&acct); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading traffic sources: %w", err)
			}
			out[acct] = append(out[acct], typ)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("reading traffic sources: %w", err)
		}
	}
	return out, nil
}

// pruneTraffic deletes the account's traffic rows whose events all lie at
// or before position (rev, idx), the lowest position of its destinations:
// traffic rows share their revision with later ones, so the
// revision-wise prune would keep them until the next change.
func (s *Store) pruneTraffic(ctx context.Context, accountID string, rev uint64, idx int) (int64, error) {
	r, err := s.wdb.ExecContext(ctx, `DELETE FROM event_outbox WHERE account_id = $1 AND source = $2
		AND (revision < $3 OR (revision = $3 AND idx + n - 1 <= $4))`, accountID, OutboxSourceTraffic, int64(rev), idx)
	if err != nil {
		return 0, fmt.Errorf("pruning traffic events of %s: %w", accountID, err)
	}
	n, _ := r.RowsAffected()
	return n, nil
}

// TrafficDrop counts the traffic events of one account and type that never
// reached the outbox: Edge, dropped at an edge because its buffer was full;
// Outbox, refused because the account was at its cap.
type TrafficDrop struct {
	AccountID string
	Type      string
	Edge      int64
	Outbox    int64
}

// AddTrafficDrops adds the counts to the account's and type's totals in
// one transaction. Counts of an account that no longer exists are
// ignored.
func (s *Store) AddTrafficDrops(ctx context.Context, drops []TrafficDrop) error {
	if len(drops) == 0 {
		return nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	now := time.Now().UnixMicro()
	for _, d := range drops {
		if _, err := tx.ExecContext(ctx, `INSERT INTO event_traffic_drops (account_id, event_type, edge_dropped, outbox_dropped, updated_at)
			SELECT id, $2, CAST($3 AS BIGINT), CAST($4 AS BIGINT), CAST($5 AS BIGINT) FROM accounts WHERE id = $1
			ON CONFLICT (account_id, event_type) DO UPDATE SET edge_dropped = event_traffic_drops.edge_dropped + excluded.edge_dropped,
				outbox_dropped = event_traffic_drops.outbox_dropped + excluded.outbox_dropped, updated_at = excluded.updated_at`,
			d.AccountID, d.Type, d.Edge, d.Outbox, now); err != nil {
			return fmt.Errorf("counting dropped traffic events of %s: %w", d.AccountID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("counting dropped traffic events: %w", err)
	}
	return nil
}

// TrafficDropsFor returns the drop totals of the account's traffic types
// that some source of a subscription naming the destination selects, by
// type; types without drops are absent.
func (s *Store) TrafficDropsFor(ctx context.Context, accountID, destID string) (map[string]TrafficDrop, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT event_type, edge_dropped, outbox_dropped FROM event_traffic_drops
		WHERE account_id = $1 AND event_type IN (SELECT src.type FROM event_sources src
			JOIN event_subscription_destinations sd ON sd.subscription_id = src.subscription_id WHERE sd.destination_id = $2)`,
		accountID, destID)
	if err != nil {
		return nil, fmt.Errorf("reading dropped traffic events of %s: %w", accountID, err)
	}
	defer rows.Close()
	out := map[string]TrafficDrop{}
	for rows.Next() {
		d := TrafficDrop{AccountID: accountID}
		if err := rows.Scan(&d.Type, &d.Edge, &d.Outbox); err != nil {
			return nil, fmt.Errorf("reading dropped traffic events of %s: %w", accountID, err)
		}
		out[d.Type] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading dropped traffic events of %s: %w", accountID, err)
	}
	return out, nil
}
