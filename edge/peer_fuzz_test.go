package edge

import (
	"bytes"
	"crypto/sha256"
	"net/netip"
	"testing"
)

// FuzzReadPeerHeader checks that the forwarded-connection header decoder
// never panics, reads no more than a header, and that what it accepts
// encodes back to the bytes it read (one encoding per header).
func FuzzReadPeerHeader(f *testing.F) {
	f.Add(appendPeerHeader(nil, &peerHeader{listener: listenerHTTPS, key: "app.example.test",
		client: netip.MustParseAddrPort("192.0.2.1:5000"), local: netip.MustParseAddrPort("[2001:db8::1]:443")}))
	f.Add(appendPeerHeader(nil, &peerHeader{listener: listenerTCP, key: "localhost:20001",
		client: netip.MustParseAddrPort("127.0.0.1:1"), local: netip.MustParseAddrPort("127.0.0.2:20001")}))
	f.Add([]byte{1, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := readPeerHeader(r)
		if err != nil {
			return
		}
		read := data[:len(data)-r.Len()]
		if len(read) > 4+maxPeerKey+2+2*maxPeerAddr {
			t.Fatalf("read %d bytes for one header", len(read))
		}
		if h.client.Addr().Is4In6() || h.local.Addr().Is4In6() {
			t.Fatal("an IPv4-mapped address was not folded")
		}
		again, err := readPeerHeader(bytes.NewReader(appendPeerHeader(nil, h)))
		if err != nil || *again != *h {
			t.Fatalf("re-encoded header %+v decodes to %+v, %v", h, again, err)
		}
	})
}

// FuzzReadProof checks that the link's proof decoder never panics and
// accepts no proof but the right MAC.
func FuzzReadProof(f *testing.F) {
	key := peerLinkKey(peerSecret)
	ekm := bytes.Repeat([]byte{7}, 32)
	var good bytes.Buffer
	_ = writeProof(&good, "ed_a", peerMAC(key, peerDialerLabel, ekm, "ed_a"))
	f.Add(good.Bytes())
	f.Add(append([]byte{4, 'e', 'd', '_', 'a'}, make([]byte, sha256.Size)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := readProof(bytes.NewReader(data), key, peerDialerLabel, ekm)
		if err != nil {
			return
		}
		if !bytes.Equal(data[1+len(id):1+len(id)+sha256.Size], peerMAC(key, peerDialerLabel, ekm, id)) {
			t.Fatal("accepted a wrong MAC")
		}
	})
}
