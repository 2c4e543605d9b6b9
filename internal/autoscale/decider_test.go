package autoscale

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// sim drives a decider on synctest's fake clock: every poll the gateways
// saw conc requests in flight and queued for the whole poll.
type sim struct {
	t       *testing.T
	d       *decider
	ready   int // ready instances follow the decision at once
	floor   int
	history []int // desired after each poll
	events  []string
}

func newSim(t *testing.T, s Settings, desired int) *sim {
	return &sim{t: t, d: newDecider(s, time.Now(), desired), ready: desired}
}

// run keeps concurrency conc for n polls.
func (m *sim) run(conc float64, n int) {
	m.t.Helper()
	poll := m.d.s.Polling
	for range n {
		time.Sleep(poll)
		arrivals := int64(0)
		if conc > 0 {
			arrivals = 1
		}
		m.d.observe(time.Now(), conc*poll.Seconds(), arrivals, int(conc))
		dec := m.d.decide(time.Now(), m.ready, m.floor)
		if dec.changed {
			m.events = append(m.events, dec.why)
		}
		m.ready = dec.desired
		m.history = append(m.history, dec.desired)
	}
}

func (m *sim) last() int { return m.history[len(m.history)-1] }

// base: one instance takes two requests; the target is one per instance,
// so the desired count is the concurrency, rounded up.
var base = Settings{
	Min: 1, Max: 20, MaxConcurrent: 2, TargetUtilization: 50, Polling: time.Second,
	StableWindow: 60 * time.Second, PanicWindow: 6 * time.Second, PanicThreshold: 200,
	ScaleDownDelay: 20 * time.Second, ScaleToZeroAfter: 5 * time.Minute,
}

// A step from 1 to 10 requests at once scales out within the panic window,
// stays out while the load lasts, and comes back to one instance once the
// load fell for the stable window and the scale-down delay — with one
// change of direction, and not earlier.
func TestStepLoadOutAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newSim(t, base, 1)
		m.run(1, 90)
		if got := m.last(); got != 1 {
			t.Fatalf("steady 1 request at once: %d instances, want 1 (history %v)", got, m.history)
		}
		low := len(m.history)
		m.run(10, 120)
		high := m.history[low:]
		reached := -1
		for i, n := range high {
			if n == 10 {
				reached = i + 1
				break
			}
		}
		if reached < 0 || reached > int(base.PanicWindow/base.Polling)+1 {
			t.Errorf("at 10 requests at once: reached 10 instances after %d polls, want within the panic window (6 polls); history %v", reached, high)
		}
		for i := 1; i < len(high); i++ {
			if high[i] < high[i-1] {
				t.Fatalf("while the load stayed at 10 the count went down at poll %d: %v", i, high)
			}
		}
		if !strings.Contains(strings.Join(m.events, "\n"), "panic mode") {
			t.Errorf("the step's events do not mention panic mode: %q", m.events)
		}
		// Back to one client that thinks a fifth of the time: 0.8 at once,
		// clearly under the target of one instance.
		back := len(m.history)
		m.run(0.8, 150)
		after := m.history[back:]
		first := -1
		for i, n := range after {
			if n < 10 {
				first = i + 1
				break
			}
		}
		// Nothing goes down before the panic window's burst has left the
		// stable window, and a lower count has been wanted for the delay.
		if first < 0 || first < int(base.ScaleDownDelay/base.Polling) {
			t.Errorf("after the load fell to 0.8, the count first went down after %d polls, want no sooner than the scale-down delay (20 polls): %v", first, after)
		}
		if got := m.last(); got != 1 {
			t.Errorf("150 s after the load fell to 0.8: %d instances, want 1 (%v)", got, after)
		}
		if r := Reversals(m.history); r != 1 {
			t.Errorf("history changed direction %d times, want once (out, then back): %v", r, m.history)
		}
	})
}

// A load that wobbles around a boundary faster than the scale-down delay
// does not make the count flap.
func TestNoFlappingUnderWobble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := base
		s.StableWindow, s.PanicWindow = 10*time.Second, 2*time.Second
		m := newSim(t, s, 4)
		m.run(4, 12) // a full stable window of data
		start := len(m.history)
		for range 10 {
			m.run(6, 4)
			m.run(3, 4)
		}
		wobble := m.history[start:]
		if r := Reversals(wobble); r != 0 {
			t.Errorf("load wobbling 3 ↔ 6 every 4 s (scale-down delay 20 s): %d reversals, want none: %v", r, wobble)
		}
	})
}

// The stable window alone decides when the delay is zero, and scale-in
// goes at most halfway per decision (Knative's rate).
func TestScaleInRateAndNoDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := base
		s.StableWindow, s.PanicWindow, s.ScaleDownDelay = 4*time.Second, time.Second, 0
		m := newSim(t, s, 16)
		m.run(16, 8)
		start := len(m.history)
		m.run(0, 20)
		down := m.history[start:]
		prev := 16
		for _, n := range down {
			if n < prev && n < prev/2 {
				t.Errorf("went from %d to %d in one decision, want at most halfway: %v", prev, n, down)
			}
			prev = n
		}
		if got := m.last(); got != 1 {
			t.Errorf("20 s idle with min 1: %d instances, want 1: %v", got, down)
		}
	})
}

// min_instances 0: the last instance stops only after ScaleToZeroAfter
// without a request; a request at zero brings one back at the next
// decision, not after a window.
func TestScaleToZeroAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := base
		s.Min, s.StableWindow, s.PanicWindow, s.ScaleDownDelay, s.ScaleToZeroAfter = 0, 10*time.Second, time.Second, 5*time.Second, 30*time.Second
		m := newSim(t, s, 1)
		m.run(1, 15)
		start := len(m.history)
		m.run(0, 40)
		idle := m.history[start:]
		zeroAt := -1
		for i, n := range idle {
			if n == 0 {
				zeroAt = i + 1
				break
			}
		}
		if zeroAt < 30 || zeroAt > 32 {
			t.Errorf("scaled to zero after %d idle polls, want right after scale_to_zero_after (30 s): %v", zeroAt, idle)
		}
		if !strings.Contains(m.events[len(m.events)-1], "scaled 1 → 0: no request for 30s") {
			t.Errorf("last event %q, want the scale to zero", m.events[len(m.events)-1])
		}
		// One request arrives and waits: the next decision starts one.
		time.Sleep(100 * time.Millisecond)
		m.d.observe(time.Now(), 0, 1, 1)
		dec := m.d.decide(time.Now(), 0, 0)
		if dec.desired != 1 || !strings.Contains(dec.why, "1 request(s) waiting and no instance running (scale from zero)") {
			t.Errorf("a request at zero: desired %d (%q), want 1, from zero", dec.desired, dec.why)
		}
	})
}

// A burst at zero starts as many instances as it needs (within max) at
// once: the queued requests count, not the window's average.
func TestBurstFromZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := base
		s.Min, s.Max = 0, 3
		d := newDecider(s, time.Now(), 0)
		time.Sleep(70 * time.Second)
		d.observe(time.Now(), 0.05, 50, 50)
		dec := d.decide(time.Now(), 0, 0)
		if dec.desired != 3 {
			t.Errorf("50 requests waiting at zero, max 3: desired %d, want 3 (%s)", dec.desired, dec.why)
		}
	})
}

// A new leader knows no history: it keeps the count it was handed for a
// stable window, then follows the load.
func TestNoScaleInWithoutHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := base
		s.StableWindow, s.ScaleDownDelay = 10*time.Second, 0
		m := newSim(t, s, 5)
		m.run(0, 9)
		for i, n := range m.history {
			if n != 5 {
				t.Fatalf("within the first stable window the count went to %d at poll %d: %v", n, i+1, m.history)
			}
		}
		m.run(0, 20)
		if m.last() != 1 {
			t.Errorf("after the stable window with no load: %d, want min 1: %v", m.last(), m.history)
		}
	})
}

// max_instances caps the count and says so; a pre-warm floor lifts it and
// says so; raising min_instances lifts it.
func TestBoundsAndPrewarm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := base
		s.Max = 3
		m := newSim(t, s, 1)
		m.run(12, 10)
		if m.last() != 3 {
			t.Errorf("12 at once, max 3: %d", m.last())
		}
		if e := m.events[len(m.events)-1]; !strings.Contains(e, "max_instances is 3") {
			t.Errorf("event %q does not name the cap", e)
		}

		s = base
		s.Min, s.ScaleToZeroAfter = 0, 10*time.Second
		m = newSim(t, s, 0)
		m.floor = 2
		m.run(0, 3)
		if m.last() != 2 || m.events[0] != "scaled 0 → 2: pre-warmed" {
			t.Errorf("pre-warm floor 2 at zero: %d, events %q", m.last(), m.events)
		}
		m.floor = 0
		m.run(0, 90)
		if m.last() != 0 {
			t.Errorf("after the pre-warm, idle: %d, want back to zero", m.last())
		}

		s = base
		m = newSim(t, s, 1)
		m.run(0, 70)
		m.d.s.Min = 3
		m.run(0, 1)
		if m.last() != 3 || !strings.Contains(m.events[len(m.events)-1], "scaled 1 → 3: min_instances is 3") {
			t.Errorf("min raised to 3: %d, events %q", m.last(), m.events)
		}
	})
}

// Utilization in the events is the deciding window's concurrency per
// ready instance over max_concurrent_requests_per_instance.
func TestEventWording(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := base
		s.MaxConcurrent, s.TargetUtilization, s.PanicThreshold = 1, 70, 1000
		s.StableWindow, s.PanicWindow, s.ScaleDownDelay = 4*time.Second, time.Second, 0
		m := newSim(t, s, 2)
		m.run(1.84, 8) // 2 instances, 1.84 at once: 92 % > 70 %
		if len(m.events) == 0 || m.events[0] != "scaled 2 → 3: utilization 92 % > 70 %" {
			t.Errorf("events %q, want the first to read scaled 2 → 3: utilization 92 %% > 70 %%", m.events)
		}
		// The load falls to 0.9: the count goes down once the stable
		// window's average is low enough for two (at most 1.4 at once,
		// under 47 % of three instances).
		m.run(0.9, 10)
		e := m.events[len(m.events)-1]
		mm := regexp.MustCompile(`^scaled 3 → 2: utilization (\d+) % < 70 %$`).FindStringSubmatch(e)
		if mm == nil {
			t.Fatalf("last event %q, want scaled 3 → 2: utilization N %% < 70 %%", e)
		}
		if u, _ := strconv.Atoi(mm[1]); u < 30 || u > 47 {
			t.Errorf("scale-in at utilization %d %%, want between 30 (the new load) and 47 %%", u)
		}
	})
}

// scale_to_zero_after is exact: no request for that long stops every
// instance, even when the stable window and the scale-down delay are
// longer, and even from several instances.
func TestScaleToZeroAfterIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := base
		s.Min, s.ScaleToZeroAfter = 0, 10*time.Second // stable 60 s, delay 20 s
		m := newSim(t, s, 3)
		m.run(3, 70)
		start := len(m.history)
		m.run(0, 12)
		idle := m.history[start:]
		for i, n := range idle {
			if i+1 < 10 && n == 0 {
				t.Fatalf("zero after %d idle polls, before scale_to_zero_after (10 s): %v", i+1, idle)
			}
		}
		if m.last() != 0 || !strings.HasPrefix(m.events[len(m.events)-1], "scaled 3 → 0: no request for 10s") {
			t.Errorf("after 12 s without a request: %d (%q), want 3 → 0 at 10 s", m.last(), m.events)
		}
	})
}

// A load that sits on a boundary between two counts (9.6 requests at once
// for instances of 1.2, so 8 or 9) and wobbles a little does not flap: the
// count goes down only where the load is clearly under the target.
func TestNoFlappingOnABoundary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := base
		s.MaxConcurrent, s.TargetUtilization = 2, 60
		s.StableWindow, s.PanicWindow, s.ScaleDownDelay = 6*time.Second, 2*time.Second, 4*time.Second
		m := newSim(t, s, 1)
		m.run(1, 10)
		start := len(m.history)
		for i := range 60 {
			m.run(9.2+0.8*float64(i%2), 1) // 9.2 and 10.0: 8 and 9 instances by the target alone
		}
		high := m.history[start:]
		if r := Reversals(m.history); r != 0 {
			t.Errorf("a load wobbling across the 8/9 boundary: %d reversals, want none: %v", r, high)
		}
		if got := m.last(); got != 9 {
			t.Errorf("settled at %d, want 9 (9.6 at once over 1.2 per instance)", got)
		}
	})
}
