package snapshot

import (
	"fmt"
	"slices"
)

// Apply returns the snapshot that d makes of s, in O(size of d): it copies
// only the index shards the delta touches and shares the rest with s, which
// is not modified. s must be at revision d.From. It fails when the revisions
// do not line up, or when the result would hold a fingerprint, reserved
// domain or reserved address twice; the caller then asks for a whole
// snapshot. The result's Delta is d.
func (s *Snapshot) Apply(d *Delta) (*Snapshot, error) {
	if s.revision != d.From {
		return nil, fmt.Errorf("snapshot delta from revision %d cannot apply to revision %d", d.From, s.revision)
	}
	if d.Revision < d.From {
		return nil, fmt.Errorf("snapshot delta goes back from revision %d to %d", d.From, d.Revision)
	}
	out := *s
	out.revision, out.createdAt, out.delta = d.Revision, d.CreatedAt, d
	var err error
	out.accounts = applyByID(&s.accounts, d.Accounts, accountID)
	out.principals = applyByID(&s.principals, d.Principals, principalID)
	out.authtokens = applyByID(&s.authtokens, d.Authtokens, authtokenID)
	out.policies = applyByID(&s.policies, d.IPPolicies, policyID)
	if out.sshByID, out.sshByFP, err = applyKeyed(&s.sshByID, &s.sshByFP, d.SSHCredentials, sshID,
		func(c *SSHCredential) string { return c.Fingerprint }); err != nil {
		return nil, err
	}
	if out.domainsByID, out.domains, err = applyKeyed(&s.domainsByID, &s.domains, d.ReservedDomains, domainID,
		func(r *ReservedDomain) string { return r.Domain }); err != nil {
		return nil, err
	}
	if out.addrsByID, out.addrs, err = applyKeyed(&s.addrsByID, &s.addrs, d.ReservedAddrs, addrID,
		func(r *ReservedAddr) string { return r.Addr }); err != nil {
		return nil, err
	}
	if d.IPRestrictions != nil {
		out.restrByID, out.restrict = applyRestrictions(s, d.IPRestrictions)
	}
	if d.RouteHolders != nil {
		out.routes, out.routesByKey = applyRoutes(s, d.RouteHolders)
	}
	return &out, nil
}

// applyByID applies c to an index by ID.
func applyByID[T any](m *cowMap[*T], c *CollectionDelta[T], id func(*T) string) cowMap[*T] {
	if c == nil {
		return *m
	}
	e := m.edit()
	for _, k := range c.Delete {
		e.del(k)
	}
	for i := range c.Upsert {
		v := &c.Upsert[i]
		e.set(id(v), v)
	}
	return e.done()
}

// applyKeyed applies c to an index by ID and its index by a second unique
// key (fingerprint, domain, address). Every old entry of a changed ID leaves
// the second index before any new one enters, so that a key may move
// between two objects within one delta.
func applyKeyed[T any](byID, byKey *cowMap[*T], c *CollectionDelta[T], id, key func(*T) string) (cowMap[*T], cowMap[*T], error) {
	if c == nil {
		return *byID, *byKey, nil
	}
	ids, keys := byID.edit(), byKey.edit()
	drop := func(k string) {
		if old, ok := ids.get(k); ok {
			if cur, ok := keys.get(key(old)); ok && id(cur) == k {
				keys.del(key(old))
			}
			ids.del(k)
		}
	}
	for _, k := range c.Delete {
		drop(k)
	}
	for i := range c.Upsert {
		drop(id(&c.Upsert[i]))
	}
	for i := range c.Upsert {
		v := &c.Upsert[i]
		if other, taken := keys.get(key(v)); taken {
			return cowMap[*T]{}, cowMap[*T]{}, fmt.Errorf("snapshot delta: %q is held by both %s and %s", key(v), id(other), id(v))
		}
		ids.set(id(v), v)
		keys.set(key(v), v)
	}
	return ids.done(), keys.done(), nil
}

// applyRestrictions applies c to the restrictions by ID and rebuilds the
// per-account lists of the accounts it touches.
func applyRestrictions(s *Snapshot, c *CollectionDelta[IPRestriction]) (cowMap[*IPRestriction], cowMap[[]*IPRestriction]) {
	ids, byAcct := s.restrByID.edit(), s.restrict.edit()
	touched := map[string]bool{}
	for _, k := range c.Delete {
		if old, ok := ids.get(k); ok {
			touched[old.AccountID] = true
			ids.del(k)
		}
	}
	for i := range c.Upsert {
		v := &c.Upsert[i]
		if old, ok := ids.get(v.ID); ok {
			touched[old.AccountID] = true
		}
		touched[v.AccountID] = true
		ids.set(v.ID, v)
	}
	for acct := range touched {
		old, _ := byAcct.get(acct)
		list := make([]*IPRestriction, 0, len(old)+1)
		for _, r := range old {
			if cur, ok := ids.get(r.ID); ok && cur == r {
				list = append(list, r) // unchanged
			}
		}
		for i := range c.Upsert {
			if v := &c.Upsert[i]; v.AccountID == acct {
				list = append(list, v)
			}
		}
		if len(list) == 0 {
			byAcct.del(acct)
			continue
		}
		sortRestrictions(list)
		byAcct.set(acct, slices.Clip(list))
	}
	return ids.done(), byAcct.done()
}

// Merge returns the delta from a.From to b.Revision: b applied after a.
// a.Revision must be b.From. Neither is modified; the result shares their
// objects.
func Merge(a, b *Delta) (*Delta, error) {
	if a.Revision != b.From {
		return nil, fmt.Errorf("snapshot deltas %d→%d and %d→%d do not follow each other", a.From, a.Revision, b.From, b.Revision)
	}
	return &Delta{
		From: a.From, Revision: b.Revision, CreatedAt: b.CreatedAt,
		Accounts:        merge(a.Accounts, b.Accounts, accountID),
		Principals:      merge(a.Principals, b.Principals, principalID),
		Authtokens:      merge(a.Authtokens, b.Authtokens, authtokenID),
		SSHCredentials:  merge(a.SSHCredentials, b.SSHCredentials, sshID),
		ReservedDomains: merge(a.ReservedDomains, b.ReservedDomains, domainID),
		ReservedAddrs:   merge(a.ReservedAddrs, b.ReservedAddrs, addrID),
		IPPolicies:      merge(a.IPPolicies, b.IPPolicies, policyID),
		IPRestrictions:  merge(a.IPRestrictions, b.IPRestrictions, restrictionID),
		RouteHolders:    merge(a.RouteHolders, b.RouteHolders, routeHolderID),
	}, nil
}

func merge[T any](a, b *CollectionDelta[T], id func(*T) string) *CollectionDelta[T] {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	later := make(map[string]bool, len(b.Upsert)+len(b.Delete))
	for i := range b.Upsert {
		later[id(&b.Upsert[i])] = true
	}
	for _, k := range b.Delete {
		later[k] = true
	}
	var c CollectionDelta[T]
	for i := range a.Upsert {
		if !later[id(&a.Upsert[i])] {
			c.Upsert = append(c.Upsert, a.Upsert[i])
		}
	}
	for _, k := range a.Delete {
		if !later[k] {
			c.Delete = append(c.Delete, k)
		}
	}
	c.Upsert = append(c.Upsert, b.Upsert...)
	c.Delete = append(c.Delete, b.Delete...)
	return &c
}
