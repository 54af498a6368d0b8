package regions

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestFastest(t *testing.T) {
	ms := time.Millisecond
	three := []Address{{"us", "10.0.0.1:4443"}, {"eu", "10.0.0.2:4443"}, {"ap", "10.0.0.3:4443"}}
	here := Address{"us", "10.0.0.1:4443"}
	measure := func(rtts map[string]time.Duration) Measure {
		return func(ctx context.Context, addr string) (time.Duration, error) {
			d, ok := rtts[addr]
			if !ok {
				return 0, errors.New("unreachable")
			}
			return d, nil
		}
	}
	cases := []struct {
		name string
		rtts map[string]time.Duration
		want Address
	}{
		{"moves to the fastest", map[string]time.Duration{"10.0.0.1:4443": 40 * ms, "10.0.0.2:4443": 5 * ms, "10.0.0.3:4443": 90 * ms}, Address{"eu", "10.0.0.2:4443"}},
		{"stays when already fastest", map[string]time.Duration{"10.0.0.1:4443": 5 * ms, "10.0.0.2:4443": 40 * ms, "10.0.0.3:4443": 90 * ms}, Address{}},
		{"stays within the margin", map[string]time.Duration{"10.0.0.1:4443": 5 * ms, "10.0.0.2:4443": 4 * ms}, Address{}},
		{"moves at the margin", map[string]time.Duration{"10.0.0.1:4443": 6 * ms, "10.0.0.2:4443": 4 * ms}, Address{"eu", "10.0.0.2:4443"}},
		{"skips unreachable regions", map[string]time.Duration{"10.0.0.1:4443": 40 * ms, "10.0.0.3:4443": 20 * ms}, Address{"ap", "10.0.0.3:4443"}},
		{"current unreachable by probe", map[string]time.Duration{"10.0.0.2:4443": 20 * ms}, Address{"eu", "10.0.0.2:4443"}},
		{"ties go to the lower address", map[string]time.Duration{"10.0.0.1:4443": 40 * ms, "10.0.0.2:4443": 5 * ms, "10.0.0.3:4443": 5 * ms}, Address{"eu", "10.0.0.2:4443"}},
		{"nothing answers", map[string]time.Duration{}, Address{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Fastest(context.Background(), three, here, measure(c.rtts))
			if got.Move.Address != c.want {
				t.Fatalf("Move = %+v, want %+v", got.Move.Address, c.want)
			}
			if got.Probed != 3 || len(got.Measured) != len(c.rtts) {
				t.Fatalf("probed %d, measured %+v; want 3 and %d", got.Probed, got.Measured, len(c.rtts))
			}
			if got.Current.ServerAddr != here.ServerAddr || got.Current.RTT != c.rtts[here.ServerAddr] {
				t.Fatalf("Current = %+v", got.Current)
			}
		})
	}
}

func TestFastestOneRegion(t *testing.T) {
	called := false
	one := func(context.Context, string) (time.Duration, error) { called = true; return time.Millisecond, nil }
	us := Address{"us", "10.0.0.1:4443"}
	// Listed twice, or with an empty address: still one region.
	got := Fastest(context.Background(), []Address{us, us, {"eu", ""}}, us, one)
	if got.Move.ServerAddr != "" || got.Probed != 0 || called {
		t.Fatalf("single region: %+v, probed %v", got, called)
	}
}

func TestFastestCurrentNotListed(t *testing.T) {
	rtts := map[string]time.Duration{"10.0.0.9:4443": time.Millisecond, "10.0.0.1:4443": 50 * time.Millisecond, "10.0.0.2:4443": 60 * time.Millisecond}
	var mu sync.Mutex
	rounds := map[string]int{}
	measure := func(ctx context.Context, addr string) (time.Duration, error) {
		mu.Lock()
		rounds[addr]++
		mu.Unlock()
		return rtts[addr], nil
	}
	got := Fastest(context.Background(), []Address{{"us", "10.0.0.1:4443"}, {"eu", "10.0.0.2:4443"}}, Address{"us", "10.0.0.9:4443"}, measure)
	if got.Move.ServerAddr != "" || got.Probed != 3 || got.Current.RTT != time.Millisecond {
		t.Fatalf("current edge (unlisted, fastest) should win: %+v", got)
	}
	for addr, n := range rounds {
		if n != ProbeRounds {
			t.Fatalf("%s measured %d times, want %d", addr, n, ProbeRounds)
		}
	}
}

func TestFastestTimeout(t *testing.T) {
	// A measure that waits for its context: the probe ends by ProbeTimeout
	// (here the caller's shorter deadline) and nothing answered.
	hang := func(ctx context.Context, addr string) (time.Duration, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	got := Fastest(ctx, []Address{{"us", "a:1"}, {"eu", "b:1"}}, Address{"us", "a:1"}, hang)
	if got.Move.ServerAddr != "" || len(got.Measured) != 0 {
		t.Fatalf("hung probes: %+v", got)
	}
}
