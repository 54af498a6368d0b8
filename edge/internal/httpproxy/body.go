package httpproxy

import (
	"errors"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/codes"
)

// errBodyTimeout means a request body stalled or arrived slower than
// Config.MinBodyRate.
var errBodyTimeout = errors.New("httpproxy: request body too slow")

var pageBodyTimeout = &pageSpec{status: http.StatusRequestTimeout, code: codes.BadRequest,
	msg: "The request body was not received in time."}

// bodyPacer decides the read deadline of a request body: the next bytes
// must come within Config.BodyReadTimeout (idle), and once the body has
// been arriving for that long its average rate must stay at or above
// Config.MinBodyRate. The deadline only moves forward, so it is set again
// only when it moved by a quarter of idle or the one set is less than half
// of idle away: a read deadline costs a timer update (and on HTTP/2 a
// message to the connection's goroutine), not one per read.
type bodyPacer struct {
	idle  time.Duration
	rate  int64 // bytes per second; 0 = no minimum
	start time.Time
	n     int64     // body bytes received
	set   time.Time // the deadline in force; zero = none yet
}

func (p *Proxy) newPacer(now time.Time) bodyPacer {
	return bodyPacer{idle: p.cfg.BodyReadTimeout, rate: p.cfg.MinBodyRate, start: now}
}

// deadline is when the body is too late if no byte arrives before.
func (b *bodyPacer) deadline(now time.Time) time.Time {
	dl := now.Add(b.idle)
	if b.rate > 0 {
		paid := time.Duration(b.n/b.rate)*time.Second + time.Duration(b.n%b.rate)*time.Second/time.Duration(b.rate)
		if r := b.start.Add(b.idle + paid); r.Before(dl) {
			dl = r
		}
	}
	return dl
}

// next returns the deadline to set before the next read, and false when
// the one in force is close enough to it to keep.
func (b *bodyPacer) next(now time.Time) (time.Time, bool) {
	dl := b.deadline(now)
	if !b.set.IsZero() && dl.Sub(b.set) < b.idle/4 && b.set.Sub(now) >= b.idle/2 {
		return b.set, false
	}
	b.set = dl
	return dl, true
}
