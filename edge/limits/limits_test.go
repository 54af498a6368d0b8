package limits

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestKeyOf(t *testing.T) {
	a := netip.MustParseAddr
	cases := []struct {
		name   string
		x, y   string
		prefix int
		same   bool
	}{
		{"IPv4 mapped folds", "192.0.2.1", "::ffff:192.0.2.1", 64, true},
		{"IPv4 distinct", "192.0.2.1", "192.0.2.2", 64, false},
		{"IPv6 same /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", 64, true},
		{"IPv6 other /64", "2001:db8:1:2::1", "2001:db8:1:3::1", 64, false},
		{"IPv6 same /48", "2001:db8:1:2::1", "2001:db8:1:ff::1", 48, true},
		{"IPv4 never meets IPv6", "0.0.0.1", "::1", 64, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := KeyOf(a(c.x), c.prefix) == KeyOf(a(c.y), c.prefix); got != c.same {
				t.Fatalf("KeyOf(%s) == KeyOf(%s): %v, want %v", c.x, c.y, got, c.same)
			}
		})
	}
}

func addrN(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func TestConnsCaps(t *testing.T) {
	c, err := NewConns(ConnsConfig{Total: 5, PerIP: 2})
	if err != nil {
		t.Fatal(err)
	}
	x := netip.MustParseAddr("192.0.2.1")
	k1, err1 := c.Acquire(x)
	_, err2 := c.Acquire(netip.MustParseAddr("::ffff:192.0.2.1")) // the same client
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := c.Acquire(x); !errors.Is(err, ErrPerIPCap) {
		t.Fatalf("third connection from one address: %v, want ErrPerIPCap", err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := c.Acquire(addrN(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Acquire(addrN(9)); !errors.Is(err, ErrTotalCap) {
		t.Fatalf("sixth connection: %v, want ErrTotalCap", err)
	}
	c.Release(k1)
	if _, err := c.Acquire(x); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	got := c.Counts()
	if got.Open != 5 || got.Keys != 4 || got.RefusedPerIP != 1 || got.RefusedTotal != 1 {
		t.Fatalf("counts %+v", got)
	}
}

// TestConnsSpray feeds a million distinct addresses: the map never holds
// more entries than the total cap, and none once they are released.
func TestConnsSpray(t *testing.T) {
	const total = 1000
	c, _ := NewConns(ConnsConfig{Total: total, PerIP: 4})
	held := make([]Key, 0, total)
	for i := 0; i < 1_000_000; i++ {
		k, err := c.Acquire(addrN(i))
		if err == nil {
			held = append(held, k)
		}
		if got := c.Counts().Keys; got > total {
			t.Fatalf("after %d addresses the map holds %d keys, over the cap %d", i+1, got, total)
		}
		if len(held) == total {
			for _, k := range held {
				c.Release(k)
			}
			held = held[:0]
		}
	}
	for _, k := range held {
		c.Release(k)
	}
	if got := c.Counts(); got.Keys != 0 || got.Open != 0 {
		t.Fatalf("after every release: %+v", got)
	}
}

// TestTableSpray feeds failures from a million distinct addresses (and
// IPv6 /64s): the table keeps at most its configured entries.
func TestTableSpray(t *testing.T) {
	tab, err := NewTable(TableConfig{Entries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tab.Close)
	th, err := NewThrottle(tab, ThrottleConfig{Name: "spray", Policy: Policy{Burst: 5, Every: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1_000_000
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				a := addrN(i)
				if i%2 == 1 {
					b := [16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
					a = netip.AddrFrom16(b)
				}
				th.Failed("", a)
			}
		}()
	}
	wg.Wait()
	if got := tab.MaxCost(); got != 1024 {
		t.Fatalf("configured cost %d, want 1024", got)
	}
	if got := tab.Len(); got > 1024 {
		t.Fatalf("table holds %d entries after the spray, over its bound 1024", got)
	}
	c := tab.Counts()
	if c.Entries > c.MaxEntries {
		t.Fatalf("counts %+v: entries over the bound", c)
	}
	if th.Counts().Failed != n {
		t.Fatalf("failures counted %d, want %d", th.Counts().Failed, n)
	}
	t.Logf("after %d addresses: %+v", n, c)
}

// TestThrottleBackoff: a burst of failures throttles that client in that
// scope only; one refill period later it may try again; a check consumes
// nothing.
func TestThrottleBackoff(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	tab, _ := NewTable(TableConfig{})
	t.Cleanup(tab.Close)
	th, err := NewThrottle(tab, ThrottleConfig{Name: "t", Policy: Policy{Burst: 3, Every: 10 * time.Second}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	bad := netip.MustParseAddr("2001:db8::1")
	sameNet := netip.MustParseAddr("2001:db8::2")
	other := netip.MustParseAddr("192.0.2.7")
	for i := 0; i < 3; i++ {
		if w := th.Wait("ep", bad); w != 0 {
			t.Fatalf("attempt %d throttled already (%v)", i+1, w)
		}
		th.Failed("ep", bad)
	}
	if w := th.Wait("ep", bad); w <= 0 || w > 10*time.Second {
		t.Fatalf("after the burst: wait %v, want (0, 10s]", w)
	}
	if w := th.Wait("ep", sameNet); w == 0 {
		t.Fatal("another address of the same /64 is not throttled")
	}
	if w := th.Wait("ep", other); w != 0 {
		t.Fatalf("another client is throttled (%v)", w)
	}
	if w := th.Wait("other-ep", bad); w != 0 {
		t.Fatalf("another scope is throttled (%v)", w)
	}
	for i := 0; i < 100; i++ { // checks consume nothing
		th.Wait("ep", bad)
	}
	now = now.Add(10 * time.Second)
	if w := th.Wait("ep", bad); w != 0 {
		t.Fatalf("one period later: wait %v, want 0", w)
	}
	th.Failed("ep", bad)
	if w := th.Wait("ep", bad); w != 10*time.Second {
		t.Fatalf("after one more failure: wait %v, want 10s", w)
	}
	if c := th.Counts(); c.Failed != 4 || c.Refused < 100 {
		t.Fatalf("counts %+v", c)
	}
}
