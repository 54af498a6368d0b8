package tunnel

import (
	"testing"
	"time"
)

func TestBackoffDefaults(t *testing.T) {
	b := &Backoff{Jitter: -1}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := b.Next(); got != w {
			t.Fatalf("attempt %d: %v, want %v", i, got, w)
		}
	}
	b.Reset()
	if got := b.Next(); got != 500*time.Millisecond {
		t.Fatalf("after reset: %v", got)
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	b := &Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for i := 0; i < 1000; i++ {
		base := min(100*time.Millisecond<<min(b.Attempt(), 10), time.Second)
		got := b.Next()
		lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
		if got < lo || got > hi {
			t.Fatalf("attempt %d: %v outside [%v, %v]", i, got, lo, hi)
		}
	}
}

func TestBackoffNoOverflow(t *testing.T) {
	b := &Backoff{Min: time.Second, Max: time.Hour, Factor: 1000, Jitter: -1}
	for i := 0; i < 100; i++ {
		if d := b.Next(); d <= 0 || d > time.Hour {
			t.Fatalf("attempt %d: %v", i, d)
		}
	}
}
