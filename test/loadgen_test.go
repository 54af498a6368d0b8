package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// loadResult is what one load run measured.
type loadResult struct {
	requests int
	errors   int
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r loadResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r loadResult) String() string {
	return fmt.Sprintf("%8.0f req/s  p50 %7s  p99 %7s  (%d requests, %d errors)",
		r.rps(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.requests, r.errors)
}

// loadTarget says where to send load: dial addr, speak TLS with serverName
// (unless plain), send GET path with Host host.
type loadTarget struct {
	addr       string
	tlsConfig  *tls.Config // nil = plain HTTP
	host, path string
}

// runLoad keeps conns keep-alive HTTP/1.1 connections busy for d, one
// request in flight per connection, like wrk. It is deliberately lean (one
// pre-built request, a minimal response parser) so the client's CPU cost,
// shared with the servers on the same cores, stays small. The loop is
// bounded by d and by maxRequests.
func runLoad(ctx context.Context, tgt loadTarget, conns int, d time.Duration, maxRequests int) loadResult {
	req := []byte("GET " + tgt.path + " HTTP/1.1\r\nHost: " + tgt.host + "\r\nUser-Agent: tollgate-bench\r\n\r\n")
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		total    int
		errCount int
		wg       sync.WaitGroup
	)
	perConn := maxRequests / conns
	startAll := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			n, errs := 0, 0
			var c net.Conn
			var br *bufio.Reader
			for n < perConn && ctx.Err() == nil {
				if c == nil {
					var err error
					c, err = dialTarget(ctx, tgt)
					if err != nil {
						errs++
						continue
					}
					br = bufio.NewReaderSize(c, 16<<10)
				}
				t0 := time.Now()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(req); err != nil {
					c.Close()
					c = nil
					errs++
					continue
				}
				if err := readResponse(br); err != nil {
					c.Close()
					c = nil
					if ctx.Err() == nil {
						errs++
					}
					continue
				}
				local = append(local, time.Since(t0))
				n++
			}
			if c != nil {
				c.Close()
			}
			mu.Lock()
			lat = append(lat, local...)
			total += n
			errCount += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res := loadResult{requests: total, errors: errCount, elapsed: time.Since(startAll)}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.p50 = lat[len(lat)*50/100]
		res.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return res
}

func dialTarget(ctx context.Context, tgt loadTarget) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", tgt.addr)
	if err != nil || tgt.tlsConfig == nil {
		return c, err
	}
	tc := tls.Client(c, tgt.tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// readResponse reads one HTTP/1.1 response with a Content-Length body (or
// chunked, for completeness) and discards it.
func readResponse(br *bufio.Reader) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return errors.New("bad status line")
	}
	if line[9] != '2' {
		return fmt.Errorf("status %s", bytes.TrimSpace(line[9:]))
	}
	cl, chunked := -1, false
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(h) <= 2 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			cl, _ = strconv.Atoi(string(v))
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		}
	}
	if chunked {
		for {
			l, err := br.ReadSlice('\n')
			if err != nil {
				return err
			}
			n, err := strconv.ParseInt(string(bytes.TrimSpace(l)), 16, 64)
			if err != nil {
				return err
			}
			if _, err := br.Discard(int(n) + 2); err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
		}
	}
	if cl < 0 {
		return errors.New("no Content-Length")
	}
	_, err = io.CopyN(io.Discard, br, int64(cl))
	return err
}
