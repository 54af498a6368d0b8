package edge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/tollgate/tollgate/tunnel"
)

// The edge-to-edge link carries one stream per forwarded public
// connection. The stream starts with the 4-byte type peerStreamForward,
// then the header:
//
//	version    1 byte, peerHeaderVersion
//	listener   1 byte, the public listener that accepted the client (peerListener)
//	key        2-byte big-endian length (1..maxPeerKey), then the route key
//	client     1-byte length (1..maxPeerAddr), then the client's address, "IP:PORT"
//	local      1-byte length (1..maxPeerAddr), then the public address it reached
//
// then the client's bytes as the forwarding edge read them (a TLS
// ClientHello included). The receiving edge answers one byte
// (peerAccepted, peerNoRoute) before anything else; a stream it closes
// without an answer is a refusal.

// peerStreamForward is the stream type of a forwarded connection ("tgpf").
const peerStreamForward tunnel.StreamType = 0x74677066

// peerStreamPing is the stream type of a link's liveness probe ("tgpp"):
// the dialler writes 4 bytes, the listener echoes them and closes
// (peerlink.go, watch). An older listener that does not know the type
// closes the stream at once, which proves it alive just as well.
const peerStreamPing tunnel.StreamType = 0x74677070

// Header bounds.
const (
	peerHeaderVersion = 1
	maxPeerKey        = 512 // a hostname is at most 253 bytes, host:port 259
	maxPeerAddr       = 64  // "[IPv6]:port" is at most 47 bytes
)

// peerListener is the public listener a forwarded connection arrived on.
type peerListener byte

const (
	listenerHTTPS peerListener = 1 // routed by the ClientHello's SNI: https and tls endpoints
	listenerTCP   peerListener = 2 // routed by the port: tcp endpoints
)

func (l peerListener) String() string {
	switch l {
	case listenerHTTPS:
		return "https"
	case listenerTCP:
		return "tcp"
	}
	return fmt.Sprintf("listener(%d)", byte(l))
}

// serves reports whether an endpoint of proto is served on the listener.
func (l peerListener) serves(proto string) bool {
	switch l {
	case listenerHTTPS:
		return proto == "https" || proto == "tls"
	case listenerTCP:
		return proto == "tcp"
	}
	return false
}

// peerHeader is the header of a forwarded connection.
type peerHeader struct {
	listener peerListener
	key      string
	client   netip.AddrPort
	local    netip.AddrPort
}

// errPeerHeader is the error of a header that is not valid.
var errPeerHeader = errors.New("edge: malformed forwarded-connection header")

// appendPeerHeader appends h's encoding to b (without the stream type).
// h.key must be 1..maxPeerKey bytes.
func appendPeerHeader(b []byte, h *peerHeader) []byte {
	b = append(b, peerHeaderVersion, byte(h.listener))
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.key)))
	b = append(b, h.key...)
	for _, a := range []netip.AddrPort{h.client, h.local} {
		s := a.String()
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b
}

// readPeerHeader reads a header from r: errPeerHeader (wrapped) when it
// is not valid, or r's error.
func readPeerHeader(r io.Reader) (*peerHeader, error) {
	var fixed [4]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return nil, err
	}
	if fixed[0] != peerHeaderVersion {
		return nil, fmt.Errorf("%w: version %d", errPeerHeader, fixed[0])
	}
	h := &peerHeader{listener: peerListener(fixed[1])}
	if h.listener != listenerHTTPS && h.listener != listenerTCP {
		return nil, fmt.Errorf("%w: listener %d", errPeerHeader, fixed[1])
	}
	n := int(binary.BigEndian.Uint16(fixed[2:]))
	if n == 0 || n > maxPeerKey {
		return nil, fmt.Errorf("%w: key of %d bytes", errPeerHeader, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	h.key = string(buf)
	for _, dst := range []*netip.AddrPort{&h.client, &h.local} {
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, err
		}
		if l[0] == 0 || l[0] > maxPeerAddr {
			return nil, fmt.Errorf("%w: address of %d bytes", errPeerHeader, l[0])
		}
		a := make([]byte, l[0])
		if _, err := io.ReadFull(r, a); err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(string(a))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errPeerHeader, err)
		}
		*dst = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return h, nil
}
