package reconcile

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// instance is one running instance as the reconciler tracks it. The
// identifying fields are set before the monitor starts and never change.
type instance struct {
	endpoint, deployment, name, id string
	driver                         string
	hash                           string
	plan                           *resolve.Plan
	addr                           string
	pid                            int
	startedAt                      time.Time
	cancel                         context.CancelFunc // stops the monitor; set by watch

	mu sync.Mutex // protects the fields below
	// ready: the readiness probe passes (the gateway may route to it).
	ready      bool
	everReady  bool
	readySince time.Time
	// exited: the driver reports the process ended.
	exited   bool
	exitCode int
	exitMsg  string
	// livenessFailed: failure_threshold consecutive liveness failures.
	livenessFailed bool
	lastProbeError string
	lastProbeAt    time.Time // when the probe result last changed
	// restarts counts restarts under this name (for show).
	restarts int
	// stopping: removed from routing, being drained and stopped.
	stopping bool
	// restarting: stopping in order to start again under the same name.
	restarting bool
	// samplePassed: the plan's sample request answered 2xx (see
	// SampleTester); sampleFailed: what it answered instead.
	samplePassed bool
	sampleFailed string
}

// view is a consistent copy of an instance's mutable state.
type view struct {
	ready, everReady, exited, livenessFailed, stopping, restarting bool
	readySince, lastProbeAt                                        time.Time
	exitCode, restarts                                             int
	exitMsg, lastProbeError, sampleFailed                          string
}

func (in *instance) view() view {
	in.mu.Lock()
	defer in.mu.Unlock()
	return view{
		ready: in.ready, everReady: in.everReady, exited: in.exited,
		livenessFailed: in.livenessFailed, stopping: in.stopping, restarting: in.restarting,
		readySince: in.readySince, exitCode: in.exitCode, exitMsg: in.exitMsg,
		lastProbeError: in.lastProbeError, lastProbeAt: in.lastProbeAt, restarts: in.restarts,
		sampleFailed: in.sampleFailed,
	}
}

// state is the instance's state as the store and `show` name it.
func (v view) state() string {
	switch {
	case v.stopping:
		return store.InstanceStopping
	case v.exited:
		return store.InstanceExited
	case v.ready:
		return store.InstanceReady
	case v.everReady:
		return store.InstanceUnready
	default:
		return store.InstanceStarting
	}
}

// setProbeError records a probe failure text ("" when it passes) and
// reports whether it changed.
func (in *instance) setProbeErrorLocked(detail string) bool {
	if in.lastProbeError == detail {
		return false
	}
	in.lastProbeError, in.lastProbeAt = detail, time.Now()
	return true
}

// watch starts the instance's monitor. An adopted instance (re-adopted
// after a restart, maybe ready) is probed at once.
func (r *Reconciler) watch(in *instance, adopted bool) {
	mctx, cancel := context.WithCancel(r.life)
	in.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.monitor(mctx, in, adopted)
	}()
}

// routable reports whether the gateway may send requests to the instance.
func (v view) routable() bool { return v.ready && !v.exited && !v.stopping }

// probeResult is one probe outcome.
type probeResult struct {
	ok     bool
	detail string // "HTTP probe failed with statuscode: 502", "connection refused"…
}

// probe performs one HTTP GET probe. Success is a status in 200–399, as
// Kubernetes and Azure count it.
func probe(ctx context.Context, client *http.Client, addr, path string, timeout time.Duration) probeResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host := addr
	if network, p := driver.SplitAddr(addr); network == "unix" {
		host = "unix"
		ctx = context.WithValue(ctx, unixSocketKey{}, p)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+path, nil)
	if err != nil {
		return probeResult{detail: err.Error()}
	}
	req.Header.Set("User-Agent", "plumbline-probe")
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return probeResult{detail: "HTTP probe timed out after " + timeout.String()}
		}
		return probeResult{detail: "HTTP probe failed: " + shortNetErr(err)}
	}
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return probeResult{ok: true}
	}
	return probeResult{detail: "HTTP probe failed with statuscode: " + strconv.Itoa(resp.StatusCode)}
}

func shortNetErr(err error) string {
	s := err.Error()
	for _, tail := range []string{"connection refused", "connection reset by peer", "EOF"} {
		if len(s) >= len(tail) && s[len(s)-len(tail):] == tail {
			return tail
		}
	}
	return s
}

// monitor watches one instance until ctx ends: it notices the process
// exiting, runs the readiness and liveness probes with the plan's settings,
// and calls notify whenever something the reconciler acts on changes.
func (r *Reconciler) monitor(ctx context.Context, in *instance, adopted bool) {
	rp, lp := in.plan.ReadinessProbe, in.plan.LivenessProbe
	start := time.Now()
	nextReady := start.Add(rp.InitialDelay)
	nextLive := start.Add(lp.InitialDelay)
	if lp.InitialDelay == 0 || adopted {
		nextLive = start.Add(lp.Period)
	}
	var readyOK, readyFail, liveFail int
	if adopted {
		nextReady = start // it was serving: look now, keep it routable while it passes
		if in.view().ready {
			readyOK = rp.SuccessThreshold
		}
	}
	poll := r.cfg.StartupPoll
	changed := func() {
		r.enqueue(in.endpoint, in.deployment)
		r.persist(in)
	}

	for {
		now := time.Now()
		wait := poll
		if d := nextReady.Sub(now); d < wait {
			wait = d
		}
		if d := nextLive.Sub(now); d < wait {
			wait = d
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		}

		st, err := r.cfg.Driver.Inspect(ctx, in.id)
		if ctx.Err() != nil {
			return
		}
		if err != nil || st.State == driver.StateExited {
			in.mu.Lock()
			in.exited, in.ready = true, false
			if err != nil {
				in.exitCode, in.exitMsg = -1, err.Error()
			} else {
				in.exitCode, in.exitMsg = st.ExitCode, st.Message
			}
			in.mu.Unlock()
			changed()
			return
		}

		now = time.Now()
		if !now.Before(nextReady) {
			res := probe(ctx, r.probeClient, in.addr, in.plan.Readiness.Path, rp.Timeout)
			if ctx.Err() != nil {
				return
			}
			sampleFailed := false
			if res.ok && readyOK+1 >= rp.SuccessThreshold && r.needsSample(in) {
				// About to be ready: the sample request must pass first.
				res = r.testSample(ctx, in)
				if ctx.Err() != nil {
					return
				}
				if sampleFailed = !res.ok; sampleFailed {
					r.enqueue(in.endpoint, in.deployment)
				}
			}
			in.mu.Lock()
			wasReady, everReady := in.ready, in.everReady
			if res.ok {
				readyFail = 0
				readyOK++
				if !in.ready && readyOK >= rp.SuccessThreshold {
					in.ready, in.everReady, in.readySince = true, true, time.Now()
					in.setProbeErrorLocked("")
				}
			} else {
				readyOK = 0
				readyFail++
				in.setProbeErrorLocked(res.detail)
				if in.ready && readyFail >= rp.FailureThreshold {
					in.ready = false
				}
			}
			nowReady := in.ready
			in.mu.Unlock()
			if nowReady != wasReady {
				if nowReady {
					r.event(in.endpoint, in.deployment, in.name, "Normal", "Ready", "instance "+in.name+" is ready at "+in.addr)
				} else {
					r.event(in.endpoint, in.deployment, in.name, "Warning", "ReadinessProbeFailed",
						"Container "+in.name+" failed readiness probe "+strconv.Itoa(readyFail)+" times, taken out of rotation: "+res.detail)
				}
				changed()
			}
			if everReady || nowReady || rp.InitialDelay > 0 || sampleFailed {
				nextReady = time.Now().Add(rp.Period)
			} else {
				nextReady = time.Now().Add(poll)
			}
		}

		if !now.Before(nextLive) {
			res := probe(ctx, r.probeClient, in.addr, in.plan.Liveness.Path, lp.Timeout)
			if ctx.Err() != nil {
				return
			}
			if res.ok {
				liveFail = 0
			} else {
				liveFail++
				in.mu.Lock()
				in.setProbeErrorLocked(res.detail)
				in.mu.Unlock()
				if liveFail == 1 {
					r.event(in.endpoint, in.deployment, in.name, "Warning", "LivenessProbeFailed",
						"Liveness probe failed for "+in.name+": "+res.detail)
				}
				if liveFail >= lp.FailureThreshold {
					in.mu.Lock()
					in.livenessFailed, in.ready = true, false
					in.mu.Unlock()
					r.event(in.endpoint, in.deployment, in.name, "Warning", "Killing",
						"Container "+in.name+" failed liveness probe "+strconv.Itoa(liveFail)+" times, will be restarted: "+res.detail)
					changed()
					return
				}
			}
			nextLive = time.Now().Add(lp.Period)
		}
	}
}
