package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
)

// ReservedAddr is a TCP address reserved by an account (ra_...).
type ReservedAddr struct {
	ID          string
	AccountID   string
	Addr        string // NormalizeAddr's form, HOST:PORT
	Region      string // a regions code; never changes
	Description string
	Metadata    string
	CreatedAt   time.Time
}

// AddrPool is a range of TCP addresses on one host from which
// CreateReservedAddr assigns an address when none is asked for.
type AddrPool struct {
	// Host is the hostname or IP address the region's edges serve TCP
	// endpoints on, such as "1.tcp.eu.example.com".
	Host string
	// FirstPort and LastPort bound the ports, inclusive, 1–65535.
	FirstPort, LastPort int
}

// ValidateAddrPool checks a pool: a Host that NormalizeAddr accepts and
// 1 <= FirstPort <= LastPort <= 65535. It returns the pool with its host
// normalised, or an error naming the problem (a configuration error, not a
// user's).
func ValidateAddrPool(p AddrPool) (AddrPool, error) {
	if p.FirstPort < 1 || p.LastPort > 65535 || p.FirstPort > p.LastPort {
		return p, fmt.Errorf("TCP address pool %s: ports %d-%d: want 1 <= first <= last <= 65535", p.Host, p.FirstPort, p.LastPort)
	}
	a, err := NormalizeAddr(net.JoinHostPort(p.Host, strconv.Itoa(p.FirstPort)))
	if err != nil {
		return p, fmt.Errorf("TCP address pool host %q: %w", p.Host, err)
	}
	p.Host, _, _ = net.SplitHostPort(a)
	return p, nil
}

// ReservedAddrCreate is the input of CreateReservedAddr.
type ReservedAddrCreate struct {
	// Addr is the address to reserve (NormalizeAddr). "" asks for one
	// from Pool.
	Addr        string
	Region      string // required: ParseRegion
	Description string
	Metadata    string
	// Pool is the region's address pool, used when Addr is "". Without
	// one, Addr is required (codes.AddrRequired).
	Pool *AddrPool
}

// ReservedAddrUpdate is the input of UpdateReservedAddr; nil fields stay as
// they are.
type ReservedAddrUpdate struct {
	Description *string
	Metadata    *string
	// Region may only repeat the current region (codes.RegionImmutable).
	Region *string
}

const reservedAddrColumns = `SELECT id, account_id, addr, region, description, metadata, created_at FROM reserved_addrs`

func scanReservedAddr(r scanner) (ReservedAddr, error) {
	var a ReservedAddr
	var created int64
	err := r.Scan(&a.ID, &a.AccountID, &a.Addr, &a.Region, &a.Description, &a.Metadata, &created)
	a.CreatedAt = fromMicros(created)
	return a, err
}

// CreateReservedAddr reserves a TCP address for the account in one unit of
// work (audit event reserved_addr_created.v0). When in.Addr is "", it
// assigns the lowest port of in.Pool that no account holds, or returns a
// *ConflictError with codes.AddrPoolExhausted. It returns a *ConflictError
// with codes.ReservedByOther when another account holds the address and
// codes.ReservedAlready when this account does. Nothing changes on error.
func (s *Store) CreateReservedAddr(ctx context.Context, actor Actor, accountID string, in ReservedAddrCreate) (*ReservedAddr, error) {
	var err error
	switch {
	case in.Addr != "":
		if in.Addr, err = NormalizeAddr(in.Addr); err != nil {
			return nil, err
		}
	case in.Pool == nil:
		return nil, codes.NewError(codes.AddrRequired,
			"Give the address to reserve as addr (HOST:PORT): this control plane assigns no TCP addresses in region %s.", truncate(in.Region, 30))
	default:
		p, err := ValidateAddrPool(*in.Pool)
		if err != nil {
			return nil, err
		}
		in.Pool = &p
	}
	if in.Region, err = ParseRegion(in.Region); err != nil {
		return nil, err
	}
	if err := ValidateDescription(in.Description); err != nil {
		return nil, err
	}
	if err := ValidateMetadata(in.Metadata); err != nil {
		return nil, err
	}
	var a *ReservedAddr
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if in.Addr == "" {
			addr, err := t.freeAddr(ctx, *in.Pool, in.Region)
			if err != nil {
				return err
			}
			in.Addr = addr
		}
		a = &ReservedAddr{ID: ids.New(ids.PrefixReservedAddr), AccountID: accountID, Addr: in.Addr,
			Region: in.Region, Description: in.Description, Metadata: in.Metadata, CreatedAt: fromMicros(t.stamp())}
		var id string
		err := t.queryRow(ctx, `INSERT INTO reserved_addrs (id, account_id, addr, region, description, metadata, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (addr) DO NOTHING RETURNING id`,
			a.ID, accountID, a.Addr, a.Region, a.Description, a.Metadata, t.stamp()).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return t.reservedConflict(ctx, "reserved_addrs", "addr", a.Addr, accountID)
		}
		if err != nil {
			return fmt.Errorf("reserving address %s: %w", a.Addr, err)
		}
		t.audit("reserved_addr_created.v0", accountID, a.ID, map[string]any{
			"addr": a.Addr, "region": a.Region, "description": a.Description})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// freeAddr returns the pool's lowest address that no account holds. The
// unit of work holds the revision row, so no other writer can take the port
// before the insert.
func (t *tx) freeAddr(ctx context.Context, p AddrPool, region string) (string, error) {
	prefix := net.JoinHostPort(p.Host, "")
	// Hosts hold only [a-z0-9.-], or an IP address: no LIKE metacharacters.
	rows, err := t.query(ctx, `SELECT addr FROM reserved_addrs WHERE addr LIKE $1`, prefix+"%")
	if err != nil {
		return "", fmt.Errorf("reading reserved ports of %s: %w", p.Host, err)
	}
	defer rows.Close()
	used := make(map[int]bool)
	for rows.Next() {
		var addr string
		if err := rows.Scan(&addr); err != nil {
			return "", fmt.Errorf("reading reserved ports of %s: %w", p.Host, err)
		}
		if port, err := strconv.Atoi(strings.TrimPrefix(addr, prefix)); err == nil {
			used[port] = true
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("reading reserved ports of %s: %w", p.Host, err)
	}
	for port := p.FirstPort; port <= p.LastPort; port++ {
		if !used[port] {
			return net.JoinHostPort(p.Host, strconv.Itoa(port)), nil
		}
	}
	return "", conflict(codes.AddrPoolExhausted,
		"Every TCP address of region %s (%s, ports %d-%d) is reserved. Release one, or ask the operator to widen the pool.",
		region, p.Host, p.FirstPort, p.LastPort)
}

// GetReservedAddr returns a reserved address of the account.
func (s *Store) GetReservedAddr(ctx context.Context, accountID, id string) (*ReservedAddr, error) {
	return getByID(ctx, s.rdb, reservedAddrColumns, "reserved address", id, accountID, scanReservedAddr)
}

// ListReservedAddrs returns one page of the account's reserved addresses,
// newest first, and whether more remain.
func (s *Store) ListReservedAddrs(ctx context.Context, accountID string, page Page) ([]ReservedAddr, bool, error) {
	return listPage(ctx, s.rdb, reservedAddrColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanReservedAddr)
}

// UpdateReservedAddr changes a reserved address's description or metadata
// (audit event reserved_addr_updated.v0). A region other than the current
// one is refused with codes.RegionImmutable; the address itself never
// changes. An update that changes nothing commits nothing.
func (s *Store) UpdateReservedAddr(ctx context.Context, actor Actor, accountID, id string, in ReservedAddrUpdate) (*ReservedAddr, error) {
	if err := validateOptional(in.Description, in.Metadata); err != nil {
		return nil, err
	}
	if in.Region != nil {
		r, err := ParseRegion(*in.Region)
		if err != nil {
			return nil, err
		}
		in.Region = &r
	}
	var a *ReservedAddr
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if a, err = getByID(ctx, t.sql, reservedAddrColumns, "reserved address", id, accountID, scanReservedAddr); err != nil {
			return err
		}
		if in.Region != nil && *in.Region != a.Region {
			return codes.NewError(codes.RegionImmutable,
				"%s is reserved in region %s; a reservation's region cannot change. Release it and reserve an address in region %s.",
				a.Addr, a.Region, *in.Region)
		}
		changes := map[string]any{}
		setField(&a.Description, in.Description, "description", changes)
		setField(&a.Metadata, in.Metadata, "metadata", changes)
		if len(changes) == 0 {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE reserved_addrs SET description = $1, metadata = $2 WHERE id = $3`,
			a.Description, a.Metadata, id); err != nil {
			return fmt.Errorf("updating reserved address %s: %w", id, err)
		}
		t.audit("reserved_addr_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// DeleteReservedAddr releases a reserved address (audit event
// reserved_addr_deleted.v0); its port may be assigned again at once.
func (s *Store) DeleteReservedAddr(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var addr, region string
		err := t.queryRow(ctx, `DELETE FROM reserved_addrs WHERE id = $1 AND account_id = $2 RETURNING addr, region`,
			id, accountID).Scan(&addr, &region)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reserved address %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("deleting reserved address %s: %w", id, err)
		}
		t.audit("reserved_addr_deleted.v0", accountID, id, map[string]any{"addr": addr, "region": region})
		return nil
	})
	return err
}
