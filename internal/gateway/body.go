package gateway

import (
	"errors"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// Defaults of the body limits (Config).
const (
	// DefaultBodyBufferBytes is how many bytes of request bodies larger than
	// 64 KiB one deployment reads whole before taking an instance slot.
	DefaultBodyBufferBytes = 32 << 20
	// DefaultMinBodyRate is the slowest a request body may arrive once
	// DefaultBodyGrace has passed: 8 KiB/s.
	DefaultMinBodyRate = 8 << 10
	// DefaultBodyGrace is how long a body may take before MinBodyRate
	// applies (and what any body gets on top of its size at that rate).
	DefaultBodyGrace = 5 * time.Second
	// DefaultMirrorMemoryBytes bounds, gateway-wide, the request bodies
	// held for mirrored copies.
	DefaultMirrorMemoryBytes = 64 << 20
)

// errBodyTooSlow: the client sent its body slower than the minimum rate.
var errBodyTooSlow = errors.New("request body arrived too slowly")

// budget is a byte budget taken and given back atomically.
type budget struct {
	limit int64 // < 0: none at all
	used  atomic.Int64
}

// take reserves n bytes, or reports false (taking nothing) when that would
// go past the limit.
func (b *budget) take(n int64) bool {
	if n < 0 || b.limit < 0 {
		return false
	}
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *budget) give(n int64) {
	if n > 0 {
		b.used.Add(-n)
	}
}

func orDefault[T int64 | time.Duration](v, d T) T {
	switch {
	case v == 0:
		return d
	case v < 0:
		return -1
	}
	return v
}

// pace makes the body's reads subject to a deadline that moves with what
// arrived: start + grace + bytes/minRate. A client trickling its body (a
// slowloris on the body) hits it and gets 408 instead of holding the
// request, and the instance slot if it has one, for as long as it likes.
type pace struct {
	rc      http.ResponseController // by value: no allocation per request
	on      bool
	rate    int64 // bytes per second; <= 0: no pacing
	grace   time.Duration
	start   time.Time
	lastSet time.Time // the deadline last set
}

func (p *pace) init(w http.ResponseWriter, rate int64, grace time.Duration) {
	if rate <= 0 {
		return
	}
	p.rc, p.on = *http.NewResponseController(w), true
	p.rate, p.grace, p.start = rate, max(grace, 0), time.Now()
	p.set(0)
}

// set moves the read deadline for n bytes read so far (not back, and not
// for less than a tenth of a second's difference: a deadline change costs
// a timer update).
func (p *pace) set(n int64) {
	if !p.on {
		return
	}
	d := p.start.Add(p.grace + time.Duration(float64(n)/float64(p.rate)*float64(time.Second)))
	if d.Sub(p.lastSet) < 100*time.Millisecond {
		return
	}
	if p.rc.SetReadDeadline(d) != nil {
		p.on = false // the connection cannot (an HTTP/1 hijacked or a test recorder)
		return
	}
	p.lastSet = d
}

// done lifts the deadline once the body is in.
func (p *pace) done() {
	if p.on {
		_ = p.rc.SetReadDeadline(time.Time{})
		p.on = false
	}
}

// isTimeout reports whether a body read failed on its deadline.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
