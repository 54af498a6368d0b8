package limits

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Key identifies one client for per-address state: see KeyOf.
type Key uint64

// DefaultIPv6Prefix is the prefix length IPv6 clients are keyed by: a
// /64 is the smallest network a host is assigned (RFC 6177, RFC 7421), so
// one client owns at least that many addresses.
const DefaultIPv6Prefix = 64

// v4Tag marks an IPv4 key in the high 32 bits. An IPv6 prefix never
// begins with ffff:ffff (that space is reserved, RFC 4291 §2.4), so IPv4
// and IPv6 keys never meet.
const v4Tag = 0xffff_ffff << 32

// KeyOf returns the key of addr: an IPv4 address (IPv4-mapped IPv6
// folded to IPv4) by itself; an IPv6 address by its first prefix bits
// (1..64). An invalid addr gets key 0.
func KeyOf(addr netip.Addr, prefix int) Key {
	addr = addr.Unmap()
	if addr.Is4() {
		b := addr.As4()
		return Key(v4Tag | uint64(binary.BigEndian.Uint32(b[:])))
	}
	if !addr.Is6() {
		return 0
	}
	b := addr.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	if prefix < 64 {
		hi &^= (1 << (64 - prefix)) - 1
	}
	return Key(hi)
}

// checkPrefix validates an IPv6 prefix length for KeyOf.
func checkPrefix(p int) error {
	if p < 1 || p > 64 {
		return fmt.Errorf("limits: IPv6 prefix /%d: use 1 to 64 (default 64)", p)
	}
	return nil
}
