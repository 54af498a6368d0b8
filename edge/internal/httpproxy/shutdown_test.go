package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// blockingHandler serves /block until release is closed, and reports each
// request that reached it on started.
func blockingHandler(started chan<- struct{}, release <-chan struct{}) http.Handler {
	mux := testHandler()
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "released")
	})
	return mux
}

func TestShutdownDrains(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			started, release := make(chan struct{}, 1), make(chan struct{})
			h := newHarness(t, blockingHandler(started, release), harnessOpts{})
			c, base := h.client(), "http://"+testHost
			if h2 {
				c, base = h.tlsClient(true), "https://"+testHost
			}

			// An idle keep-alive connection.
			idle := h.dial()
			idleBR := bufio.NewReader(idle)
			fmt.Fprintf(idle, "GET /hello/idle HTTP/1.1\r\nHost: %s\r\n\r\n", testHost)
			readResponse(t, idleBR, "GET")

			// A request in flight.
			type result struct {
				body string
				err  error
			}
			res := make(chan result, 1)
			go func() {
				resp, err := c.Get(base + "/block")
				if err != nil {
					res <- result{err: err}
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				res <- result{string(b), err}
			}()
			<-started

			done := make(chan error, 1)
			go func() { done <- h.proxy.Shutdown(context.Background()) }()

			// The idle connection closes; Shutdown waits for the request.
			expectClosed(t, idleBR)
			select {
			case err := <-done:
				t.Fatalf("Shutdown returned %v with a request in flight", err)
			default:
			}
			// No new connections are served.
			nc := h.dial()
			if _, err := bufio.NewReader(nc).ReadByte(); err == nil {
				t.Fatal("a connection accepted after Shutdown was served")
			}

			close(release)
			if r := <-res; r.err != nil || r.body != "released" {
				t.Fatalf("in-flight request: %q %v", r.body, r.err)
			}
			if err := <-done; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if err := h.proxy.Shutdown(context.Background()); !errors.Is(err, ErrProxyClosed) {
				t.Fatalf("second Shutdown: %v", err)
			}
		})
	}
}

func TestShutdownDeadline(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	h := newHarness(t, blockingHandler(started, release), harnessOpts{})
	res := make(chan error, 1)
	go func() {
		resp, err := h.client().Get("http://" + testHost + "/block")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		res <- err
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := h.proxy.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-res; err == nil {
		t.Fatal("the request in flight completed after a forced shutdown")
	}
}
