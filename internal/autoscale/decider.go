package autoscale

import (
	"fmt"
	"math"
	"time"
)

// Settings are one deployment's autoscaling settings, from its plan.
type Settings struct {
	// Min (0: scale to zero) and Max bound the instance count.
	Min, Max int
	// MaxConcurrent is max_concurrent_requests_per_instance: one
	// instance's capacity, in requests at once.
	MaxConcurrent int
	// TargetUtilization is the share of MaxConcurrent, in percent, that
	// the autoscaler keeps in flight and queued per instance.
	TargetUtilization int
	// Polling is how often it decides.
	Polling time.Duration
	// StableWindow and PanicWindow are the windows the concurrency is
	// averaged over.
	StableWindow, PanicWindow time.Duration
	// PanicThreshold, in percent of the target: past it over the panic
	// window the count rises at once and does not fall until a stable
	// window passed.
	PanicThreshold int
	// ScaleDownDelay is how long a lower count must be wanted before it
	// applies.
	ScaleDownDelay time.Duration
	// ScaleToZeroAfter is how long without a request stops the last
	// instance (Min 0 only).
	ScaleToZeroAfter time.Duration
}

// target is the concurrency per instance the autoscaler aims for.
func (s Settings) target() float64 {
	return float64(max(1, s.MaxConcurrent)) * float64(max(1, s.TargetUtilization)) / 100
}

// Knative's rate limits: at most 1000 × the ready instances at once up,
// at most half of them down per decision.
const (
	maxScaleUpRate   = 1000.0
	maxScaleDownRate = 2.0
)

// scaleInTolerance is how far under the target the concurrency must be at
// the lower count before the count goes down (the Kubernetes HPA's
// tolerance).
const scaleInTolerance = 0.1

// point is a value at a time: the cumulative busy request-seconds, or a
// count wanted.
type point struct {
	t time.Time
	v float64
}

// decider is the scaling algorithm of one deployment, Knative's KPA
// applied to requests in flight and queued: the desired count is the
// average concurrency over a stable window divided by the per-instance
// target; a burst over the short panic window past the panic threshold
// scales out at once and holds the count until a stable window passed
// without one; a lower count applies only once it has been wanted for the
// scale-down delay; the last instance stops only after ScaleToZeroAfter
// without a request. It holds no lock: its owner serialises calls. Time
// is passed in, so the windows are tested on a fake clock.
type decider struct {
	s Settings
	// first is when observation began: until a stable window of data
	// exists the count never goes down (a new leader knows no history).
	first time.Time
	// busy are cumulative busy request-seconds, oldest first, reaching
	// back one point past the stable window; cum is the running total.
	busy []point
	cum  float64
	// lastActive is when a request last arrived or was pending.
	lastActive time.Time
	// pending is the requests in flight and queued at the last
	// observation, over every gateway.
	pending int
	// panicAt is the last time the panic window was over the threshold
	// (zero: stable mode); maxPanic the most wanted since panic began.
	panicAt  time.Time
	maxPanic int
	// wanted are recent wanted counts, for the scale-down delay.
	wanted []point
	// desired is the current decision.
	desired int
}

func newDecider(s Settings, now time.Time, desired int) *decider {
	return &decider{s: s, first: now, lastActive: now, desired: desired,
		busy: []point{{t: now}}}
}

// observe records what the gateways saw since the last observation: busy
// request-seconds, requests admitted, and the requests in flight and
// queued now.
func (d *decider) observe(now time.Time, busy float64, arrivals int64, pending int) {
	d.cum += max(0, busy)
	d.busy = append(d.busy, point{t: now, v: d.cum})
	d.pending = pending
	if arrivals > 0 || pending > 0 || busy > 0 {
		d.lastActive = now
	}
	// Keep one point at or before the stable window's start.
	cut := now.Add(-d.s.StableWindow)
	i := 0
	for i+1 < len(d.busy) && !d.busy[i+1].t.After(cut) {
		i++
	}
	d.busy = d.busy[i:]
}

// average is the mean concurrency over the window ending at the last
// observation: the growth of the busy integral divided by the time.
func (d *decider) average(w time.Duration) float64 {
	last := d.busy[len(d.busy)-1]
	start := last.t.Add(-w)
	base := d.busy[0]
	for _, p := range d.busy {
		if p.t.After(start) {
			break
		}
		base = p
	}
	span := last.t.Sub(base.t).Seconds()
	if span <= 0 {
		return 0
	}
	return (last.v - base.v) / span
}

// decision is the outcome of one evaluation.
type decision struct {
	// desired is the count to run; changed says it differs from the last.
	desired, was int
	changed      bool
	// stable and panic are the average concurrency over each window.
	stable, panic float64
	// utilization is the deciding window's concurrency per ready instance,
	// in percent of MaxConcurrent.
	utilization float64
	panicking   bool
	// why says what decided it, for the event.
	why string
}

// decide evaluates the count at now for ready instances (those the
// gateways dispatch to) and a pre-warm floor (0: none).
func (d *decider) decide(now time.Time, ready, floor int) decision {
	s := d.s
	target := s.target()
	readyF := math.Max(1, float64(ready))
	stable, panicAvg := d.average(s.StableWindow), d.average(s.PanicWindow)
	dspc := math.Ceil(stable / target)
	if int(dspc) < d.desired {
		// Hysteresis: a lower count only where the load sits clearly
		// under the target, so that a load on a boundary (9.6 requests
		// at once for instances of 1.2) does not flap between two counts.
		dspc = math.Min(float64(d.desired), math.Ceil(stable/(target*(1-scaleInTolerance))))
	}
	dppc := math.Ceil(panicAvg / target)
	maxUp := math.Ceil(maxScaleUpRate * readyF)
	maxDown := math.Floor(readyF / maxScaleDownRate)
	stableWant := int(math.Min(math.Max(dspc, maxDown), maxUp))
	panicWant := int(math.Min(math.Max(dppc, maxDown), maxUp))

	over := dppc/readyF >= float64(s.PanicThreshold)/100
	switch {
	case over:
		d.panicAt = now
	case !d.panicAt.IsZero() && now.Sub(d.panicAt) > s.StableWindow:
		d.panicAt, d.maxPanic = time.Time{}, 0 // the burst is in the stable window now
	}
	out := decision{was: d.desired, stable: stable, panic: panicAvg, panicking: !d.panicAt.IsZero()}
	want := stableWant
	observed := stable
	if out.panicking {
		// Panic mode: scale out to the larger of the two, never in.
		want = max(want, panicWant)
		if want > d.maxPanic {
			d.maxPanic = want
		}
		want = d.maxPanic
		observed = math.Max(stable, panicAvg)
	}
	out.utilization = 100 * observed / (readyF * float64(max(1, s.MaxConcurrent)))

	// Scale-down delay: the count applied is the most wanted over the
	// delay.
	d.wanted = append(d.wanted, point{t: now, v: float64(want)})
	cut := now.Add(-s.ScaleDownDelay)
	i := 0
	for i < len(d.wanted)-1 && !d.wanted[i].t.After(cut) {
		i++
	}
	d.wanted = d.wanted[i:]
	delayed := want
	for _, p := range d.wanted {
		delayed = max(delayed, int(p.v))
	}
	reason := ""
	if delayed > want {
		want = delayed
	}
	if now.Sub(d.first) < s.StableWindow && want < d.desired {
		want = d.desired // not a stable window of data yet: never down
	}
	if ready == 0 && d.pending > 0 {
		// No instance serves: the requests waiting now are the demand (the
		// windows' averages of a burst that just began understate it), and
		// they need instances enough to take them all at once.
		want = max(want, int(math.Ceil(float64(d.pending)/float64(max(1, s.MaxConcurrent)))))
	}

	switch {
	case want > s.Max:
		want, reason = s.Max, clampMax
	case want < s.Min:
		want, reason = s.Min, clampMin
	}
	idle := now.Sub(d.lastActive)
	switch {
	case s.Min == 0 && idle >= s.ScaleToZeroAfter && d.pending == 0:
		// No request at all for scale_to_zero_after: zero, whatever the
		// windows and the delay still remember.
		want, reason = 0, ""
	case want == 0 && idle < s.ScaleToZeroAfter:
		want = 1 // the last instance stays until the deployment was idle long enough
	}
	if f := min(floor, s.Max); f > want {
		want, reason = f, prewarm
	}

	out.desired = want
	out.changed = want != d.desired
	if out.changed {
		out.why = d.explain(out, reason, idle)
	}
	d.desired = want
	return out
}

// Why a count was bounded, for explain.
const (
	clampMax = "max"
	clampMin = "min"
	prewarm  = "pre-warm"
)

// explain words a change of count for its event.
func (d *decider) explain(o decision, reason string, idle time.Duration) string {
	head := fmt.Sprintf("scaled %d → %d: ", o.was, o.desired)
	target := d.s.TargetUtilization
	up := o.desired > o.was
	util := fmt.Sprintf("utilization %.0f %% > %d %%", o.utilization, target)
	if o.panicking {
		util += fmt.Sprintf(" (a burst over the last %s: panic mode, no scale-in until %s have passed without one)",
			d.s.PanicWindow, d.s.StableWindow)
	}
	switch {
	case o.was == 0 && d.pending > 0:
		return head + fmt.Sprintf("%d request(s) waiting and no instance running (scale from zero)", d.pending)
	case o.desired == 0:
		return head + fmt.Sprintf("no request for %s (min_instances 0)", roundDuration(idle))
	case reason == prewarm:
		return head + "pre-warmed"
	case reason == clampMin && up:
		return head + fmt.Sprintf("min_instances is %d", d.s.Min)
	case reason == clampMax && !up:
		return head + fmt.Sprintf("max_instances is %d", d.s.Max)
	case up && reason == clampMax:
		return head + util + fmt.Sprintf("; max_instances is %d", d.s.Max)
	case up:
		return head + util
	default:
		return head + fmt.Sprintf("utilization %.0f %% < %d %%", o.utilization, target)
	}
}

// roundDuration rounds d for people: 340ms, 2.5s, 5m0s.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(10 * time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}
