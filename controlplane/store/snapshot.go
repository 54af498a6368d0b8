package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/tollgate/tollgate/snapshot"
)

// BuildSnapshot reads everything an edge enforces from, in one consistent
// read transaction, and returns it indexed as a *snapshot.Snapshot whose
// Revision is the store revision that state reflects.
func (s *Store) BuildSnapshot(ctx context.Context) (*snapshot.Snapshot, error) {
	var d snapshot.Data
	err := s.view(ctx, func(ctx context.Context, q *sql.Tx) error {
		var rev int64
		if err := q.QueryRowContext(ctx, `SELECT value FROM revision WHERE id = 1`).Scan(&rev); err != nil {
			return fmt.Errorf("reading revision: %w", err)
		}
		d.Revision = uint64(rev)
		d.CreatedAt = s.now().UTC()
		var err error
		if d.Accounts, err = readAll(ctx, q, `SELECT id, name, active FROM accounts`, func(r scanner) (snapshot.Account, error) {
			var a snapshot.Account
			return a, r.Scan(&a.ID, &a.Name, &a.Active)
		}); err != nil {
			return err
		}
		if d.Principals, err = readPrincipals(ctx, q); err != nil {
			return err
		}
		// Account and owner IDs repeat across credentials: intern them.
		ids := interner{}
		var acct, owner, acl sql.RawBytes
		if d.Authtokens, err = readAll(ctx, q, `SELECT id, account_id, owner_id, secret_hash, acl FROM authtokens`,
			func(r scanner) (snapshot.Authtoken, error) {
				var a snapshot.Authtoken
				err := r.Scan(&a.ID, &acct, &owner, &a.SecretHash, &acl)
				a.AccountID, a.OwnerID = ids.get(acct), ids.get(owner)
				if len(acl) > 0 {
					a.ACL = splitACL(string(acl))
				}
				return a, err
			}); err != nil {
			return err
		}
		if d.SSHCredentials, err = readAll(ctx, q, `SELECT id, account_id, owner_id, fingerprint, public_key, acl FROM ssh_credentials`,
			func(r scanner) (snapshot.SSHCredential, error) {
				var c snapshot.SSHCredential
				var acl string
				err := r.Scan(&c.ID, &c.AccountID, &c.OwnerID, &c.Fingerprint, &c.PublicKey, &acl)
				c.ACL = splitACL(acl)
				return c, err
			}); err != nil {
			return err
		}
		if err := readReservations(ctx, q, &d); err != nil {
			return err
		}
		return readIPPolicies(ctx, q, &d)
	})
	if err != nil {
		return nil, fmt.Errorf("building snapshot: %w", err)
	}
	snap, err := snapshot.New(d)
	if err != nil {
		return nil, fmt.Errorf("building snapshot at revision %d: %w", d.Revision, err)
	}
	return snap, nil
}

// readPrincipals reads users and bot users with the accounts each acts in.
func readPrincipals(ctx context.Context, q *sql.Tx) ([]snapshot.Principal, error) {
	ps, err := readAll(ctx, q, `SELECT id, kind, name, active FROM principals`, func(r scanner) (snapshot.Principal, error) {
		var p snapshot.Principal
		var kind string
		err := r.Scan(&p.ID, &kind, &p.Name, &p.Active)
		p.Kind = snapshot.PrincipalKind(kind)
		return p, err
	})
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*snapshot.Principal, len(ps))
	for i := range ps {
		byID[ps[i].ID] = &ps[i]
	}
	type link struct{ principal, account string }
	links, err := readAll(ctx, q, `SELECT id, account_id FROM bot_users
		UNION ALL SELECT user_id, account_id FROM memberships`, func(r scanner) (link, error) {
		var l link
		return l, r.Scan(&l.principal, &l.account)
	})
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if p := byID[l.principal]; p != nil {
			p.AccountIDs = append(p.AccountIDs, l.account)
		}
	}
	return ps, nil
}

// interner returns one shared string per distinct byte sequence.
type interner map[string]string

func (m interner) get(b []byte) string {
	if s, ok := m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	m[s] = s
	return s
}

// readAll runs q and scans every row.
func readAll[T any](ctx context.Context, tx *sql.Tx, q string, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("reading: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	return out, nil
}
