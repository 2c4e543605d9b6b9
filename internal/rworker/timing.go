package rworker

import (
	"strconv"
	"strings"
	"time"
)

// timingHeader is the response head line in which a worker started with
// --timing reports its timestamps (see lean.R); the supervisor answers it
// as Server-Timing and never passes it on.
const timingHeader = ".plumbline-timing"

// stageTimes are the supervisor's timestamps of one request (--timing).
type stageTimes struct {
	start    time.Time // the handler began: the request's head was read
	framed   time.Time // the body was read and the frame built
	acquired time.Time // an idle worker was taken
	written  time.Time // the frame was written to the worker's pipe
	answered time.Time // the worker's whole answer was read
}

// Stages names the Server-Timing metrics of a --timing answer, in request
// order. Every request's time from the supervisor's handler to the worker's
// answer read back is their sum (the R stages a router does not report,
// with pr$call, are folded into r-route).
var Stages = []struct{ Name, Desc string }{
	{"sup-read", "supervisor: read the body and frame the request"},
	{"queue", "supervisor: wait for an idle worker"},
	{"pipe-write", "supervisor: write the frame to the worker's pipe"},
	{"to-r", "the pipe and R waking up: frame written until R read its first bytes"},
	{"r-read", "R: read the frame from the pipe and split its head"},
	{"r-request", "R: build the request environment plumber sees"},
	{"r-route", "R: plumber's routing steps up to the endpoint (filters, body read)"},
	{"r-parse", "R: parse the body with plumber's parser, gather the arguments"},
	{"r-handler", "R: the endpoint's function (the user's code)"},
	{"r-serialize", "R: the serializer and plumber's response"},
	{"r-encode", "R: encode the response frame (and format these timestamps)"},
	{"from-r", "R writing its answer, the pipe and the supervisor reading it"},
}

// serverTiming returns the Server-Timing value of a request from the
// supervisor's timestamps and the worker's (the timing header's value:
// seconds since the epoch when the frame arrived, was read, the request
// was built, parsing began, the handler was called, it returned, routing
// ended, the frame was encoded; "-" for a stamp the router did not take).
func (tm *stageTimes) serverTiming(value string) string {
	f := strings.Fields(value)
	r := make([]float64, 8)
	for i := range r {
		r[i] = -1
		if i < len(f) {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				r[i] = v
			}
		}
	}
	// Without the endpoint's stamps (pr$call), routing runs to the end.
	if r[3] < 0 || r[4] < 0 || r[5] < 0 {
		r[3], r[4], r[5] = r[6], r[6], r[6]
	}
	sec := func(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
	points := []float64{sec(tm.start), sec(tm.framed), sec(tm.acquired), sec(tm.written),
		r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], sec(tm.answered)}
	// R's stamps are taken where the work happens. The supervisor's are
	// taken after the fact and can be late (its write can return after R
	// already read the frame, when the machine is busy): those before R's
	// first stamp are moved back to it, and every stage starts no earlier
	// than the one before it ended, so that the stages add up to the whole.
	for i := 3; i >= 1; i-- {
		points[i] = min(points[i], points[i+1])
	}
	for i := 1; i < len(points); i++ {
		points[i] = max(points[i], points[i-1])
	}
	var b strings.Builder
	for i, st := range Stages {
		d := (points[i+1] - points[i]) * 1000
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(st.Name)
		b.WriteString(";dur=")
		b.WriteString(strconv.FormatFloat(d, 'f', 3, 64))
	}
	return b.String()
}
