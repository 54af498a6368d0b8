package controlplane

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/regions"
)

// The operations below are shared by the REST API and the dashboard: each
// holds the checks of one rule (who may, what is valid) so that the two
// surfaces cannot drift apart. The store validates the objects themselves
// (CIDRs, domains, roles) and keeps the account's last administrator.

// OwnerFor returns the owner of a credential (authtoken, API key, SSH key)
// the caller creates: the caller when ownerID is "" or their own ID; a user
// (usr_) or bot user (bot_) of the account otherwise, for administrators
// only. Read-only callers are refused first (RequireWrite); a malformed
// ownerID is a 400 (CheckID).
func (c *Caller) OwnerFor(ownerID string) (string, error) {
	if err := c.RequireWrite(); err != nil {
		return "", err
	}
	if ownerID == "" || ownerID == c.Key.OwnerID {
		return c.Key.OwnerID, nil
	}
	if err := CheckID(ownerID, ids.PrefixUser, ids.PrefixBotUser); err != nil {
		return "", err
	}
	if !c.IsAdmin() {
		return "", Forbidden("Only administrators may create a credential owned by someone else; leave owner_id out to own it yourself.")
	}
	return ownerID, nil
}

// CreateSSHCredential registers an SSH public key for in.OwnerID (the
// caller when empty; OwnerFor decides who may name another owner), as POST
// /ssh_credentials does. A key registered already, in any account, is a
// 409 codes.SSHKeyRegistered; the store validates the key and the ACL.
func (cp *Core) CreateSSHCredential(ctx context.Context, c *Caller, in store.SSHCredentialCreate) (*store.SSHCredential, error) {
	owner, err := c.OwnerFor(in.OwnerID)
	if err != nil {
		return nil, err
	}
	in.OwnerID = owner
	cred, err := cp.store.CreateSSHCredential(ctx, c.Actor, c.AccountID(), in)
	if errors.Is(err, store.ErrConflict) {
		// Edges find an SSH credential by its key's fingerprint, so a key
		// is registered once, in one account. Say no more than that: which
		// account holds it is not the caller's business.
		return nil, &Error{Status: http.StatusConflict, Code: codes.SSHKeyRegistered,
			Msg: "This SSH public key is registered already. Use another key, or delete the credential that holds it.", Cause: err}
	}
	return cred, err
}

// UpdateMemberRoles changes the roles of member userID as PATCH
// /users/{id} does: team managers and administrators only
// (RequireTeamManager), CheckRoleChange inside the store's unit of work,
// and the store refuses (codes.LastAdmin, 409) a change that leaves the
// account without an active administrator. A missing member is a 404.
func (cp *Core) UpdateMemberRoles(ctx context.Context, c *Caller, userID string, in store.MemberUpdate) (*store.Member, error) {
	if err := c.RequireTeamManager(); err != nil {
		return nil, err
	}
	m, err := cp.store.UpdateMember(ctx, c.Actor, c.AccountID(), userID, in, func(cur store.Membership) error {
		next := cur
		if in.Admin != nil {
			next.Admin = *in.Admin
		}
		return c.CheckRoleChange(cur, next)
	})
	if err != nil {
		return nil, NotFound(err, "user", userID)
	}
	return m, nil
}

// RemoveMember removes user userID from the caller's account as DELETE
// /users/{id} does: bot users are refused (RequireUser), CheckRemoveMember
// runs inside the store's unit of work (anyone may leave), the store keeps
// the last active administrator (codes.LastAdmin) and deletes the member's
// credentials in the account. A missing member is a 404.
func (cp *Core) RemoveMember(ctx context.Context, c *Caller, userID string) error {
	if err := c.RequireUser("remove users"); err != nil {
		return err
	}
	_, err := cp.store.RemoveMember(ctx, c.Actor, c.AccountID(), userID, func(cur store.Membership) error {
		return c.CheckRemoveMember(userID, cur)
	})
	return NotFound(err, "user", userID)
}

// TCPAddrPool is one region's range of TCP addresses that the control plane
// assigns reserved addresses from: Host (the hostname or IP address the
// region's edges serve TCP endpoints on) with ports FirstPort to LastPort,
// inclusive, 1–65535. store.ValidateAddrPool checks one.
type TCPAddrPool struct {
	Host      string
	FirstPort int
	LastPort  int
}

// Reservations holds the settings that complete a reservation request
// before the store takes it; the REST API and the dashboard build theirs
// from the same flags.
type Reservations struct {
	// DefaultRegion is the region of a reservation made without one.
	// Default regions.Default ("us"), as on the hosted platform
	// (docs/api-compatibility.md#reserved-domains).
	DefaultRegion string
	// TCPAddrPools maps a region code to the addresses the control plane
	// assigns from when an address is reserved without addr. In a region
	// without a pool, addr is required (codes.AddrRequired).
	TCPAddrPools map[string]TCPAddrPool
}

// Region returns the region of a reservation that names none.
func (rs Reservations) Region() string {
	if rs.DefaultRegion != "" {
		return rs.DefaultRegion
	}
	return string(regions.Default)
}

// DomainCreate completes a domain reservation: no region means
// DefaultRegion. The store checks the rest.
func (rs Reservations) DomainCreate(in store.ReservedDomainCreate) store.ReservedDomainCreate {
	if in.Region == "" {
		in.Region = rs.Region()
	}
	return in
}

// poolRegions returns the regions whose address pool holds addr (already
// normalised). Misconfigured pools hold nothing.
func (rs Reservations) poolRegions(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	p, _ := strconv.Atoi(port)
	var out []string
	for region, pool := range rs.TCPAddrPools {
		vp, err := store.ValidateAddrPool(store.AddrPool(pool))
		if err == nil && vp.Host == host && p >= vp.FirstPort && p <= vp.LastPort {
			out = append(out, region)
		}
	}
	slices.Sort(out)
	return out
}

// AddrCreate completes a TCP address reservation: a region named must be
// valid (store.ParseRegion); an address of a region's pool belongs to that
// region (given without a region it takes it; reserved in another region it
// is a 400 codes.AddrInvalid); no region means DefaultRegion; no address
// means one from the region's pool. The store checks the rest.
func (rs Reservations) AddrCreate(in store.ReservedAddrCreate) (store.ReservedAddrCreate, error) {
	if in.Region != "" {
		if _, err := store.ParseRegion(in.Region); err != nil {
			return in, err
		}
	}
	if in.Addr != "" {
		addr, err := store.NormalizeAddr(in.Addr)
		if err != nil {
			return in, err
		}
		if owners := rs.poolRegions(addr); len(owners) > 0 {
			switch {
			case in.Region == "" && len(owners) == 1:
				in.Region = owners[0]
			case in.Region != "" && !slices.Contains(owners, in.Region):
				return in, BadRequest(codes.AddrInvalid,
					"%s is in the TCP address pool of region %s; reserve it in that region.", addr, owners[0])
			}
		}
	}
	if in.Region == "" {
		in.Region = rs.Region()
	}
	if in.Addr == "" {
		if pool, ok := rs.TCPAddrPools[in.Region]; ok {
			p := store.AddrPool(pool)
			in.Pool = &p
		}
	}
	return in, nil
}
