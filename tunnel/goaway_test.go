package tunnel

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestGoAwayEndsClientWithErrGoingAway: an edge draining for a restart
// closes the session with ServerSession.GoAway; on both transports our
// agent's session ends with an error wrapping ErrGoingAway (so the agent
// reconnects without a backoff delay) that carries the reason, and the
// edge's Run returns ErrGoingAway too. A plain Close with a reason must
// not look like going away.
func TestGoAwayEndsClientWithErrGoingAway(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			s := startSessions(t, tr, &fakeHandler{}, ServerConfig{}, ClientConfig{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := s.client.Auth(ctx, &Auth{Extra: AuthExtra{Authtoken: "good"}}); err != nil {
				t.Fatal(err)
			}
			const reason = "The edge is restarting; reconnect now."
			if err := s.server.GoAway(reason); err != nil {
				t.Fatal(err)
			}
			cerr := wait(t, s.clientErr, 10*time.Second, "the client session to end")
			s.clientErr <- cerr
			if !errors.Is(cerr, ErrGoingAway) || !strings.Contains(cerr.Error(), reason) {
				t.Fatalf("client session ended with %v, want ErrGoingAway carrying %q", cerr, reason)
			}
			serr := wait(t, s.serverErr, 10*time.Second, "the server session to end")
			s.serverErr <- serr
			if !errors.Is(serr, ErrGoingAway) {
				t.Fatalf("server session ended with %v, want ErrGoingAway", serr)
			}
		})
	}
	t.Run("close-is-not-goaway", func(t *testing.T) {
		s := startSessions(t, "tcp", &fakeHandler{}, ServerConfig{}, ClientConfig{})
		_ = s.server.Close(errors.New("credential revoked"))
		cerr := wait(t, s.clientErr, 10*time.Second, "the client session to end")
		s.clientErr <- cerr
		if errors.Is(cerr, ErrGoingAway) {
			t.Fatalf("a plain close ended the client with %v", cerr)
		}
	})
}
