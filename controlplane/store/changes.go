package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/snapshot"
)

// The kinds of snapshot object the change log records (snapshot_changes.kind,
// written by the triggers of migration 00005).
const (
	kindAccount        = "account"
	kindPrincipal      = "principal"
	kindAuthtoken      = "authtoken"
	kindSSHCredential  = "ssh_credential"
	kindReservedDomain = "reserved_domain"
	kindReservedAddr   = "reserved_addr"
	kindIPPolicy       = "ip_policy"
	kindIPRestriction  = "ip_restriction"
)

// pruneEvery is how often (in revisions) a mutation prunes the change log.
const pruneEvery = 64

// Changes returns the delta from revision after to the store's current
// revision, read in one consistent read transaction: the objects the change
// log records as changed in (after, current], each read afresh (an upsert)
// or found gone (a delete). It costs O(objects changed), whatever the size
// of the store. When after is the current revision the delta is empty.
// Errors: ErrChangesPruned when the log does not reach back to after (or
// after is beyond the store's revision): the caller needs BuildSnapshot.
func (s *Store) Changes(ctx context.Context, after uint64) (*snapshot.Delta, error) {
	d := &snapshot.Delta{From: after}
	err := s.view(ctx, func(ctx context.Context, q *sql.Tx) error {
		var rev, floor int64
		if err := q.QueryRowContext(ctx, `SELECT r.value, f.revision FROM revision r, snapshot_changes_floor f
			WHERE r.id = 1 AND f.id = 1`).Scan(&rev, &floor); err != nil {
			return fmt.Errorf("reading revision: %w", err)
		}
		if after < uint64(floor) || after > uint64(rev) {
			return fmt.Errorf("%w: revision %d, log covers %d..%d", ErrChangesPruned, after, floor, rev)
		}
		d.Revision, d.CreatedAt = uint64(rev), s.now().UTC()
		rows, err := q.QueryContext(ctx, `SELECT DISTINCT kind, object_id FROM snapshot_changes
			WHERE revision > $1 AND revision <= $2`, int64(after), rev)
		if err != nil {
			return fmt.Errorf("reading the change log: %w", err)
		}
		changed := map[string][]string{}
		for rows.Next() {
			var kind, id string
			if err := rows.Scan(&kind, &id); err != nil {
				rows.Close()
				return fmt.Errorf("reading the change log: %w", err)
			}
			changed[kind] = append(changed[kind], id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading the change log: %w", err)
		}
		return readChanged(ctx, q, changed, d)
	})
	if err != nil {
		return nil, fmt.Errorf("reading snapshot changes after revision %d: %w", after, err)
	}
	return d, nil
}

// readChanged reads the current rows of the changed objects into d: found
// ones as upserts, missing ones as deletes.
func readChanged(ctx context.Context, q *sql.Tx, changed map[string][]string, d *snapshot.Delta) error {
	var sub snapshot.Data
	var err error
	for kind, ids := range changed {
		f := byIDs(ids)
		switch kind {
		case kindAccount:
			if sub.Accounts, err = readAccounts(ctx, q, f); err == nil {
				d.Accounts = collect(sub.Accounts, ids, func(v *snapshot.Account) string { return v.ID })
			}
		case kindPrincipal:
			if sub.Principals, err = readPrincipals(ctx, q, f); err == nil {
				d.Principals = collect(sub.Principals, ids, func(v *snapshot.Principal) string { return v.ID })
			}
		case kindAuthtoken:
			if sub.Authtokens, err = readAuthtokens(ctx, q, f); err == nil {
				d.Authtokens = collect(sub.Authtokens, ids, func(v *snapshot.Authtoken) string { return v.ID })
			}
		case kindSSHCredential:
			if sub.SSHCredentials, err = readSSHCredentials(ctx, q, f); err == nil {
				d.SSHCredentials = collect(sub.SSHCredentials, ids, func(v *snapshot.SSHCredential) string { return v.ID })
			}
		case kindReservedDomain:
			if sub.ReservedDomains, err = readReservedDomains(ctx, q, f); err == nil {
				d.ReservedDomains = collect(sub.ReservedDomains, ids, func(v *snapshot.ReservedDomain) string { return v.ID })
			}
		case kindReservedAddr:
			if sub.ReservedAddrs, err = readReservedAddrs(ctx, q, f); err == nil {
				d.ReservedAddrs = collect(sub.ReservedAddrs, ids, func(v *snapshot.ReservedAddr) string { return v.ID })
			}
		case kindIPPolicy:
			if sub.IPPolicies, err = readIPPolicyList(ctx, q, f); err == nil {
				d.IPPolicies = collect(sub.IPPolicies, ids, func(v *snapshot.IPPolicy) string { return v.ID })
			}
		case kindIPRestriction:
			if sub.IPRestrictions, err = readIPRestrictionList(ctx, q, f); err == nil {
				d.IPRestrictions = collect(sub.IPRestrictions, ids, func(v *snapshot.IPRestriction) string { return v.ID })
			}
		case kindRouteHolder:
			if sub.RouteHolders, err = readRouteHolders(ctx, q, f); err == nil {
				d.RouteHolders = collect(sub.RouteHolders, ids, func(v *snapshot.RouteHolder) string { return v.ID })
			}
		default:
			// A kind this version does not know (a newer control plane's
			// trigger): nothing of ours to send.
		}
		if err != nil {
			return fmt.Errorf("reading changed %s objects: %w", kind, err)
		}
	}
	return nil
}

// collect makes the collection delta of the changed IDs from the rows
// found: every row found is an upsert, every ID without a row a delete.
func collect[T any](found []T, changed []string, id func(*T) string) *snapshot.CollectionDelta[T] {
	c := &snapshot.CollectionDelta[T]{Upsert: found}
	if len(found) == len(changed) {
		return c
	}
	present := make(map[string]bool, len(found))
	for i := range found {
		present[id(&found[i])] = true
	}
	for _, k := range changed {
		if !present[k] {
			c.Delete = append(c.Delete, k)
		}
	}
	return c
}

// pruneChanges deletes change-log rows older than the store's history, every
// pruneEvery revisions, in the unit of work t.
func (s *Store) pruneChanges(ctx context.Context, t *tx) error {
	if t.rev%pruneEvery != 0 || t.rev <= s.history {
		return nil
	}
	keep := int64(t.rev - s.history)
	if _, err := t.exec(ctx, `DELETE FROM snapshot_changes WHERE revision <= $1`, keep); err != nil {
		return fmt.Errorf("pruning the change log: %w", err)
	}
	if _, err := t.exec(ctx, `UPDATE snapshot_changes_floor SET revision = $1 WHERE id = 1 AND revision < $1`, keep); err != nil {
		return fmt.Errorf("pruning the change log: %w", err)
	}
	return nil
}

// rowFilter selects the rows a snapshot reader reads: every row (ids nil)
// or those whose ID column is in ids, read in batches.
type rowFilter struct {
	all bool
	ids []string
}

var allRows = rowFilter{all: true}

func byIDs(ids []string) rowFilter { return rowFilter{ids: ids} }

// idBatch is how many IDs one "IN (...)" query names.
const idBatch = 500

// each calls fn with a WHERE clause on col (or "" for every row) and its
// arguments, once per batch.
func (f rowFilter) each(col string, fn func(where string, args []any) error) error {
	if f.all {
		return fn("", nil)
	}
	for start := 0; start < len(f.ids); start += idBatch {
		batch := f.ids[start:min(start+idBatch, len(f.ids))]
		var b strings.Builder
		args := make([]any, len(batch))
		b.WriteString(" WHERE " + col + " IN (")
		for i, id := range batch {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "$%d", i+1)
			args[i] = id
		}
		b.WriteByte(')')
		if err := fn(b.String(), args); err != nil {
			return err
		}
	}
	return nil
}

// readFiltered runs query+where (+suffix) for every batch of f and scans
// every row.
func readFiltered[T any](ctx context.Context, q *sql.Tx, f rowFilter, query, col, suffix string, scan func(scanner) (T, error)) ([]T, error) {
	var out []T
	err := f.each(col, func(where string, args []any) error {
		rows, err := readAll(ctx, q, query+where+suffix, scan, args...)
		out = append(out, rows...)
		return err
	})
	return out, err
}
