package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/regions"
	"github.com/tollgate/tollgate/tunnel"
)

func TestFastestRegion(t *testing.T) {
	a := &Agent{log: zap.NewNop()}
	resp := func(region string, addrs map[string]string) *tunnel.AuthResp {
		r := &tunnel.AuthResp{}
		r.Extra.Region = region
		for reg, sa := range addrs {
			r.Extra.ConnectAddresses = append(r.Extra.ConnectAddresses, tunnel.ConnectAddress{Region: reg, ServerAddr: sa})
		}
		return r
	}
	three := map[string]string{"us": "10.0.0.1:4443", "eu": "10.0.0.2:4443", "ap": "10.0.0.3:4443"}
	probe := func(rtts map[string]time.Duration) regions.Measure {
		return func(ctx context.Context, addr string) (time.Duration, error) {
			d, ok := rtts[addr]
			if !ok {
				return 0, errors.New("unreachable")
			}
			return d, nil
		}
	}
	ms := time.Millisecond
	cases := []struct {
		name string
		rtts map[string]time.Duration
		want string
	}{
		{"moves to the fastest", map[string]time.Duration{"10.0.0.1:4443": 40 * ms, "10.0.0.2:4443": 5 * ms, "10.0.0.3:4443": 90 * ms}, "10.0.0.2:4443"},
		{"stays when already fastest", map[string]time.Duration{"10.0.0.1:4443": 5 * ms, "10.0.0.2:4443": 40 * ms, "10.0.0.3:4443": 90 * ms}, ""},
		{"stays within the margin", map[string]time.Duration{"10.0.0.1:4443": 5 * ms, "10.0.0.2:4443": 4 * ms}, ""},
		{"skips unreachable regions", map[string]time.Duration{"10.0.0.1:4443": 40 * ms, "10.0.0.3:4443": 20 * ms}, "10.0.0.3:4443"},
		{"current unreachable by probe", map[string]time.Duration{"10.0.0.2:4443": 20 * ms}, "10.0.0.2:4443"},
	}
	for _, c := range cases {
		if got := a.fastestRegion(context.Background(), resp("us", three), "10.0.0.1:4443", probe(c.rtts)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// One region only: nothing to measure.
	called := false
	one := func(context.Context, string) (time.Duration, error) { called = true; return ms, nil }
	if got := a.fastestRegion(context.Background(), resp("us", map[string]string{"us": "10.0.0.1:4443"}), "10.0.0.1:4443", one); got != "" || called {
		t.Errorf("single region: got %q, probed %v", got, called)
	}
}
