package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/tollgate/tollgate/snapshot"
)

// BuildSnapshot reads everything an edge enforces from, in one consistent
// read transaction, and returns it indexed as a *snapshot.Snapshot whose
// Revision is the store revision that state reflects. It costs O(objects);
// Changes gives the delta since a revision in O(change).
func (s *Store) BuildSnapshot(ctx context.Context) (*snapshot.Snapshot, error) {
	var d snapshot.Data
	err := s.view(ctx, func(ctx context.Context, q *sql.Tx) error {
		var rev int64
		if err := q.QueryRowContext(ctx, `SELECT value FROM revision WHERE id = 1`).Scan(&rev); err != nil {
			return fmt.Errorf("reading revision: %w", err)
		}
		d.Revision = uint64(rev)
		d.CreatedAt = s.now().UTC()
		return readSnapshotData(ctx, q, allRows, &d)
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

// readSnapshotData reads every collection of the snapshot into d. The
// readers below are the one definition of how a row becomes a snapshot
// object, shared by BuildSnapshot (every row) and Changes (changed rows).
func readSnapshotData(ctx context.Context, q *sql.Tx, f rowFilter, d *snapshot.Data) error {
	var err error
	if d.Accounts, err = readAccounts(ctx, q, f); err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	if d.Principals, err = readPrincipals(ctx, q, f); err != nil {
		return fmt.Errorf("principals: %w", err)
	}
	if d.Authtokens, err = readAuthtokens(ctx, q, f); err != nil {
		return fmt.Errorf("authtokens: %w", err)
	}
	if d.SSHCredentials, err = readSSHCredentials(ctx, q, f); err != nil {
		return fmt.Errorf("SSH credentials: %w", err)
	}
	if d.ReservedDomains, err = readReservedDomains(ctx, q, f); err != nil {
		return fmt.Errorf("reserved domains: %w", err)
	}
	if d.ReservedAddrs, err = readReservedAddrs(ctx, q, f); err != nil {
		return fmt.Errorf("reserved addresses: %w", err)
	}
	if d.IPPolicies, err = readIPPolicyList(ctx, q, f); err != nil {
		return fmt.Errorf("IP policies: %w", err)
	}
	if d.IPRestrictions, err = readIPRestrictionList(ctx, q, f); err != nil {
		return fmt.Errorf("IP restrictions: %w", err)
	}
	if d.RouteHolders, err = readRouteHolders(ctx, q, f); err != nil {
		return fmt.Errorf("route holders: %w", err)
	}
	return nil
}

func readAccounts(ctx context.Context, q *sql.Tx, f rowFilter) ([]snapshot.Account, error) {
	return readFiltered(ctx, q, f, `SELECT id, name, active FROM accounts`, "id", "", func(r scanner) (snapshot.Account, error) {
		var a snapshot.Account
		return a, r.Scan(&a.ID, &a.Name, &a.Active)
	})
}

// readPrincipals reads users and bot users with the accounts each acts in
// (ordered by account ID).
func readPrincipals(ctx context.Context, q *sql.Tx, f rowFilter) ([]snapshot.Principal, error) {
	ps, err := readFiltered(ctx, q, f, `SELECT id, kind, name, active FROM principals`, "id", "", func(r scanner) (snapshot.Principal, error) {
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
	type link struct {
		principal, account string
		active             bool
	}
	bots, err := readFiltered(ctx, q, f, `SELECT id, account_id FROM bot_users`, "id", "", func(r scanner) (link, error) {
		l := link{active: true}
		return l, r.Scan(&l.principal, &l.account)
	})
	if err != nil {
		return nil, err
	}
	// A membership deactivated in one account (migration 00012, SCIM)
	// is listed in DeactivatedIn as well.
	members, err := readFiltered(ctx, q, f, `SELECT user_id, account_id, active FROM memberships`, "user_id", " ORDER BY account_id",
		func(r scanner) (link, error) {
			var l link
			return l, r.Scan(&l.principal, &l.account, &l.active)
		})
	if err != nil {
		return nil, err
	}
	for _, l := range append(bots, members...) {
		if p := byID[l.principal]; p != nil {
			p.AccountIDs = append(p.AccountIDs, l.account)
			if !l.active {
				p.DeactivatedIn = append(p.DeactivatedIn, l.account)
			}
		}
	}
	return ps, nil
}

func readAuthtokens(ctx context.Context, q *sql.Tx, f rowFilter) ([]snapshot.Authtoken, error) {
	// Account and owner IDs repeat across credentials: intern them.
	ids := interner{}
	var acct, owner, acl sql.RawBytes
	return readFiltered(ctx, q, f, `SELECT id, account_id, owner_id, secret_hash, acl FROM authtokens`, "id", "",
		func(r scanner) (snapshot.Authtoken, error) {
			var a snapshot.Authtoken
			err := r.Scan(&a.ID, &acct, &owner, &a.SecretHash, &acl)
			a.AccountID, a.OwnerID = ids.get(acct), ids.get(owner)
			if len(acl) > 0 {
				a.ACL = splitACL(string(acl))
			}
			return a, err
		})
}

func readSSHCredentials(ctx context.Context, q *sql.Tx, f rowFilter) ([]snapshot.SSHCredential, error) {
	return readFiltered(ctx, q, f, `SELECT id, account_id, owner_id, fingerprint, public_key, acl FROM ssh_credentials`, "id", "",
		func(r scanner) (snapshot.SSHCredential, error) {
			var c snapshot.SSHCredential
			var acl string
			err := r.Scan(&c.ID, &c.AccountID, &c.OwnerID, &c.Fingerprint, &c.PublicKey, &acl)
			c.ACL = splitACL(acl)
			return c, err
		})
}

// readReservedDomains reads reserved domains; a domain's region, TLS and
// HSTS settings are what edges enforce.
func readReservedDomains(ctx context.Context, q *sql.Tx, f rowFilter) ([]snapshot.ReservedDomain, error) {
	return readFiltered(ctx, q, f, `SELECT id, account_id, domain, region, min_tls_version, private_key_type, hsts
		FROM reserved_domains`, "id", "", func(r scanner) (snapshot.ReservedDomain, error) {
		var rd snapshot.ReservedDomain
		return rd, r.Scan(&rd.ID, &rd.AccountID, &rd.Domain, &rd.Region, &rd.MinTLSVersion, &rd.PrivateKeyType, &rd.HSTS)
	})
}

func readReservedAddrs(ctx context.Context, q *sql.Tx, f rowFilter) ([]snapshot.ReservedAddr, error) {
	return readFiltered(ctx, q, f, `SELECT id, account_id, addr, region FROM reserved_addrs`, "id", "",
		func(r scanner) (snapshot.ReservedAddr, error) {
			var ra snapshot.ReservedAddr
			return ra, r.Scan(&ra.ID, &ra.AccountID, &ra.Addr, &ra.Region)
		})
}

// readIPPolicyList reads IP policies, each with its rules ordered by ID.
func readIPPolicyList(ctx context.Context, q *sql.Tx, f rowFilter) ([]snapshot.IPPolicy, error) {
	ps, err := readFiltered(ctx, q, f, `SELECT id, account_id FROM ip_policies`, "id", " ORDER BY id",
		func(r scanner) (snapshot.IPPolicy, error) {
			var p snapshot.IPPolicy
			return p, r.Scan(&p.ID, &p.AccountID)
		})
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*snapshot.IPPolicy, len(ps))
	for i := range ps {
		byID[ps[i].ID] = &ps[i]
	}
	type rule struct {
		policyID string
		snapshot.IPPolicyRule
	}
	rules, err := readFiltered(ctx, q, f, `SELECT id, ip_policy_id, cidr, action FROM ip_policy_rules`, "ip_policy_id", " ORDER BY id",
		func(r scanner) (rule, error) {
			var x rule
			return x, r.Scan(&x.ID, &x.policyID, &x.CIDR, &x.Action)
		})
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	for _, x := range rules {
		if p := byID[x.policyID]; p != nil {
			p.Rules = append(p.Rules, x.IPPolicyRule)
		}
	}
	return ps, nil
}

// readIPRestrictionList reads IP restrictions with the policies each
// applies, in order.
func readIPRestrictionList(ctx context.Context, q *sql.Tx, f rowFilter) ([]snapshot.IPRestriction, error) {
	return readFiltered(ctx, q, f, ipRestrictionColumns, "r.id", " ORDER BY r.id",
		func(r scanner) (snapshot.IPRestriction, error) {
			x, err := scanIPRestriction(r)
			return snapshot.IPRestriction{ID: x.ID, AccountID: x.AccountID, Type: x.Type, Enforced: x.Enforced,
				IPPolicyIDs: x.IPPolicyIDs}, err
		})
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

// readAll runs q with args and scans every row.
func readAll[T any](ctx context.Context, tx *sql.Tx, q string, scan func(scanner) (T, error), args ...any) ([]T, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
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
