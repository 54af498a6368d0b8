package controlplane

import (
	"strconv"
	"testing"
	"time"
)

func TestKeyedLimiterSweepForgetsRefilledBuckets(t *testing.T) {
	k := newKeyedLimiter(1000, 1, 0, 0)
	now := time.Now()
	for i := 0; i < 10; i++ {
		k.get(strconv.Itoa(i), now)
	}
	k.sweep(now.Add(k.idle + time.Millisecond))
	if n := len(k.buckets); n != 0 {
		t.Fatalf("%d buckets left after they all refilled", n)
	}
	k.get("busy", now)
	k.sweep(now) // not idle yet
	if len(k.buckets) != 1 {
		t.Fatal("a busy bucket was dropped")
	}
}
