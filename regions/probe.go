package regions

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Region choice without a configured region: the first edge an agent
// reaches lists every region's edge address in its Auth response
// (ConnectAddresses, docs/agent-protocol.md); Fastest measures each
// of them with the caller's Measure and names the one to move to, once per
// agent run. The agent's Measure is a TCP connect and a TLS handshake; this
// package does no I/O of its own.

// ProbeRounds is how many measurements each region's edge gets; the
// fastest counts, so one slow SYN does not decide.
const ProbeRounds = 3

// ProbeTimeout bounds the measurement of every edge together.
const ProbeTimeout = 2 * time.Second

// SwitchMargin is how much faster another region's edge must answer before
// the agent leaves the edge it reached: smaller differences are noise.
const SwitchMargin = 2 * time.Millisecond

// Measure reports how long reaching the edge at addr (HOST:PORT) takes, or
// an error when it cannot be reached. It must return when ctx ends.
type Measure func(ctx context.Context, addr string) (time.Duration, error)

// Measurement is the fastest of ProbeRounds measurements of one edge.
type Measurement struct {
	Address
	RTT time.Duration
}

// Choice is what Fastest decided and what it measured.
type Choice struct {
	// Move is the edge to move to; its ServerAddr is "" when the agent
	// stays where it is.
	Move Measurement
	// Current is the measurement of the edge the agent reached; its RTT is
	// 0 when that edge did not answer the probe.
	Current Measurement
	// Probed is how many edges were measured: 0 when addrs listed fewer
	// than two.
	Probed int
	// Measured lists every edge that answered, sorted by ServerAddr.
	Measured []Measurement
}

// Fastest measures the edges in addrs and current, concurrently, up to
// ProbeRounds times each within ProbeTimeout (an edge's first error ends
// its rounds), and chooses the one that answered fastest (ties go to the
// lower ServerAddr). It moves only when that edge is not current and, if
// current answered, beats it by at least SwitchMargin. Addresses without
// a ServerAddr are ignored, and nothing is measured unless addrs lists at
// least two edges; current.ServerAddr is measured even when addrs leaves
// it out.
func Fastest(ctx context.Context, addrs []Address, current Address, measure Measure) Choice {
	cands := map[string]Region{} // server addr -> region
	for _, a := range addrs {
		if a.ServerAddr != "" {
			cands[a.ServerAddr] = a.Region
		}
	}
	if len(cands) < 2 {
		return Choice{Current: Measurement{Address: current}}
	}
	if _, ok := cands[current.ServerAddr]; !ok {
		cands[current.ServerAddr] = current.Region
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	var mu sync.Mutex
	best := map[string]time.Duration{}
	var wg sync.WaitGroup
	for sa := range cands {
		wg.Go(func() {
			for range ProbeRounds {
				rtt, err := measure(ctx, sa)
				if err != nil {
					return
				}
				mu.Lock()
				if cur, ok := best[sa]; !ok || rtt < cur {
					best[sa] = rtt
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	c := Choice{Current: Measurement{Address: Address{Region: cands[current.ServerAddr], ServerAddr: current.ServerAddr}}, Probed: len(cands)}
	here, ok := best[current.ServerAddr]
	c.Current.RTT = here
	var pick Measurement
	for sa, rtt := range best {
		m := Measurement{Address: Address{Region: cands[sa], ServerAddr: sa}, RTT: rtt}
		c.Measured = append(c.Measured, m)
		if pick.ServerAddr == "" || rtt < pick.RTT || (rtt == pick.RTT && sa < pick.ServerAddr) {
			pick = m
		}
	}
	sort.Slice(c.Measured, func(i, j int) bool { return c.Measured[i].ServerAddr < c.Measured[j].ServerAddr })
	if pick.ServerAddr == "" || pick.ServerAddr == current.ServerAddr || (ok && here-pick.RTT < SwitchMargin) {
		return c
	}
	c.Move = pick
	return c
}
