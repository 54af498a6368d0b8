package snapshot

import (
	"fmt"
	"reflect"
	"time"
)

// Delta is the change from the snapshot at revision From to the one
// at Revision: for each collection, the objects added or changed (Upsert,
// whole objects) and the IDs of those removed (Delete). The snapshot feed
// sends a delta to an edge that holds From, and a whole snapshot after a gap.
// Objects are keyed by their ID field.
type Delta struct {
	From      uint64    `json:"from"`
	Revision  uint64    `json:"revision"`
	CreatedAt time.Time `json:"created_at"`

	Accounts        *CollectionDelta[Account]        `json:"accounts,omitempty"`
	Principals      *CollectionDelta[Principal]      `json:"principals,omitempty"`
	Authtokens      *CollectionDelta[Authtoken]      `json:"authtokens,omitempty"`
	SSHCredentials  *CollectionDelta[SSHCredential]  `json:"ssh_credentials,omitempty"`
	ReservedDomains *CollectionDelta[ReservedDomain] `json:"reserved_domains,omitempty"`
	ReservedAddrs   *CollectionDelta[ReservedAddr]   `json:"reserved_addrs,omitempty"`
	IPPolicies      *CollectionDelta[IPPolicy]       `json:"ip_policies,omitempty"`
	IPRestrictions  *CollectionDelta[IPRestriction]  `json:"ip_restrictions,omitempty"`
	RouteHolders    *CollectionDelta[RouteHolder]    `json:"route_holders,omitempty"`
}

// CollectionDelta is the change of one snapshot collection.
type CollectionDelta[T any] struct {
	Upsert []T      `json:"upsert,omitempty"`
	Delete []string `json:"delete,omitempty"`
}

// Diff returns the delta that turns from into to. Objects whose content is
// unchanged (reflect.DeepEqual) are left out; a collection without changes is
// nil.
func Diff(from, to *Data) *Delta {
	return &Delta{
		From:            from.Revision,
		Revision:        to.Revision,
		CreatedAt:       to.CreatedAt,
		Accounts:        diff(from.Accounts, to.Accounts, func(v *Account) string { return v.ID }),
		Principals:      diff(from.Principals, to.Principals, func(v *Principal) string { return v.ID }),
		Authtokens:      diff(from.Authtokens, to.Authtokens, func(v *Authtoken) string { return v.ID }),
		SSHCredentials:  diff(from.SSHCredentials, to.SSHCredentials, func(v *SSHCredential) string { return v.ID }),
		ReservedDomains: diff(from.ReservedDomains, to.ReservedDomains, func(v *ReservedDomain) string { return v.ID }),
		ReservedAddrs:   diff(from.ReservedAddrs, to.ReservedAddrs, func(v *ReservedAddr) string { return v.ID }),
		IPPolicies:      diff(from.IPPolicies, to.IPPolicies, func(v *IPPolicy) string { return v.ID }),
		IPRestrictions:  diff(from.IPRestrictions, to.IPRestrictions, func(v *IPRestriction) string { return v.ID }),
		RouteHolders:    diff(from.RouteHolders, to.RouteHolders, routeHolderID),
	}
}

// Apply returns base changed by d. base must be at revision d.From; base is
// not modified. It fails when the revisions do not line up, so that a delta
// is never applied to the wrong snapshot.
func (d *Delta) Apply(base *Data) (Data, error) {
	if base.Revision != d.From {
		return Data{}, fmt.Errorf("snapshot delta from revision %d cannot apply to revision %d", d.From, base.Revision)
	}
	if d.Revision < d.From {
		return Data{}, fmt.Errorf("snapshot delta goes back from revision %d to %d", d.From, d.Revision)
	}
	return Data{
		Revision:        d.Revision,
		CreatedAt:       d.CreatedAt,
		Accounts:        apply(base.Accounts, d.Accounts, func(v *Account) string { return v.ID }),
		Principals:      apply(base.Principals, d.Principals, func(v *Principal) string { return v.ID }),
		Authtokens:      apply(base.Authtokens, d.Authtokens, func(v *Authtoken) string { return v.ID }),
		SSHCredentials:  apply(base.SSHCredentials, d.SSHCredentials, func(v *SSHCredential) string { return v.ID }),
		ReservedDomains: apply(base.ReservedDomains, d.ReservedDomains, func(v *ReservedDomain) string { return v.ID }),
		ReservedAddrs:   apply(base.ReservedAddrs, d.ReservedAddrs, func(v *ReservedAddr) string { return v.ID }),
		IPPolicies:      apply(base.IPPolicies, d.IPPolicies, func(v *IPPolicy) string { return v.ID }),
		IPRestrictions:  apply(base.IPRestrictions, d.IPRestrictions, func(v *IPRestriction) string { return v.ID }),
		RouteHolders:    apply(base.RouteHolders, d.RouteHolders, routeHolderID),
	}, nil
}

// Size returns the number of objects the delta upserts or deletes.
func (d *Delta) Size() int {
	return size(d.Accounts) + size(d.Principals) + size(d.Authtokens) + size(d.SSHCredentials) +
		size(d.ReservedDomains) + size(d.ReservedAddrs) + size(d.IPPolicies) + size(d.IPRestrictions) +
		size(d.RouteHolders)
}

func size[T any](c *CollectionDelta[T]) int {
	if c == nil {
		return 0
	}
	return len(c.Upsert) + len(c.Delete)
}

func diff[T any](from, to []T, id func(*T) string) *CollectionDelta[T] {
	old := make(map[string]*T, len(from))
	for i := range from {
		old[id(&from[i])] = &from[i]
	}
	var c CollectionDelta[T]
	for i := range to {
		k := id(&to[i])
		if o, ok := old[k]; !ok || !reflect.DeepEqual(o, &to[i]) {
			c.Upsert = append(c.Upsert, to[i])
		}
		delete(old, k)
	}
	for i := range from {
		if k := id(&from[i]); old[k] != nil {
			c.Delete = append(c.Delete, k)
		}
	}
	if len(c.Upsert) == 0 && len(c.Delete) == 0 {
		return nil
	}
	return &c
}

func apply[T any](base []T, c *CollectionDelta[T], id func(*T) string) []T {
	if c == nil {
		return base // immutable snapshots may share slices
	}
	drop := make(map[string]bool, len(c.Delete)+len(c.Upsert))
	for _, k := range c.Delete {
		drop[k] = true
	}
	for i := range c.Upsert {
		drop[id(&c.Upsert[i])] = true
	}
	out := make([]T, 0, len(base)+len(c.Upsert)-len(c.Delete))
	for i := range base {
		if !drop[id(&base[i])] {
			out = append(out, base[i])
		}
	}
	return append(out, c.Upsert...)
}
