package harness

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/plumbline/plumbline/bench/internal/sysinfo"
)

// Targets from issues 7 and 19 (and the performance goals they come from).
const (
	targetGatewayRatio = 0.6 // plumbline-http vs nginx, requests/s
	targetHTTPSRatio   = 0.5 // plumbline-https vs nginx-https, requests/s
	targetAddedP50     = 200 * time.Microsecond
	targetProxyCPU     = 50 * time.Microsecond
	targetBackendCPU   = 1.2 // backend CPU per request behind plumbline vs behind nginx
	targetStormP99     = 2.0 // p99 during the storm vs quiet
	targetNaiveRatio   = 12.0
	targetCloseFactor  = 1.2
	targetFirstOK      = 5 * time.Second
	targetIdleRSS      = 60 << 20
	targetPeakRSS      = 150 << 20
	goal429P99         = 5 * time.Millisecond // the overload goal: refuse fast
)

// ratios divides a's figure by b's, repeat by repeat.
func ratios(a, b []float64) []float64 {
	n := min(len(a), len(b))
	out := make([]float64, 0, n)
	for i := range n {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// diffs subtracts b from a, repeat by repeat.
func diffs(a, b []time.Duration) []time.Duration {
	n := min(len(a), len(b))
	out := make([]time.Duration, n)
	for i := range n {
		out[i] = a[i] - b[i]
	}
	return out
}

// busyNote says when other processes were using the machine.
func busyNote(r *Results) string {
	if max(r.BackgroundBefore, r.BackgroundDuring) < 0.10 {
		return ""
	}
	return fmt.Sprintf(" The machine was not quiet: other work used %.0f %% of its CPU time before the run and %.0f %% during it, so these figures are pessimistic.", 100*r.BackgroundBefore, 100*r.BackgroundDuring)
}

func verdicts(r *Results) []Verdict {
	var out []Verdict
	skip := func(target, why string) { out = append(out, Verdict{Target: target, Skipped: true, Figure: why}) }
	out = append(out, gatewayVerdicts(r, skip)...)
	out = append(out, stormVerdicts(r, skip)...)
	out = append(out, rVerdicts(r, skip)...)
	out = append(out, leanVerdicts(r, skip)...)

	if o := r.Overload; o != nil {
		maxSeen := 0
		for _, m := range o.MaxSeen {
			maxSeen = max(maxSeen, m)
		}
		out = append(out,
			Verdict{Target: fmt.Sprintf("overload: concurrency seen by each instance ≤ max_concurrent_requests_per_instance (%d)", o.MaxConcurrent),
				Met: len(o.MaxSeen) > 0 && maxSeen <= o.MaxConcurrent, Figure: "max in flight at the backends: " + fmtMaxSeen(o.MaxSeen),
				Limit: "the gateway let more requests through to an instance than its setting allows"},
			Verdict{Target: "overload: no 5xx at 2× capacity", Met: o.Count5xx == 0 && o.Stats.Errors == 0,
				Figure: fmt.Sprintf("%d × 5xx, %d transport errors (%s)", o.Count5xx, o.Stats.Errors, o.Stats.CodesString()),
				Limit:  "see the server log for the 5xx"},
			Verdict{Target: fmt.Sprintf("overload: p99 time to a 429 ≤ %s", goal429P99), Met: o.Count429 > 0 && o.P99To429 <= goal429P99,
				Figure: fmt.Sprintf("p99 %s over %d answers 429 (p50 %s)", fmtDur(o.P99To429), o.Count429, fmtDur(o.P50To429)),
				Limit:  "429s are answered by the same 2 shared cores that serve the admitted requests and the load generator" + busyNote(r)},
		)
	} else {
		skip("overload", "scenario 3 not run")
	}

	if ro := r.Rollout; ro != nil {
		v := Verdict{Target: "rollout: 0 failed requests", Met: ro.Failed == 0 && len(ro.Steps) == 7,
			Figure: fmt.Sprintf("%d failed of %d at %d/s over %d steps", ro.Failed, ro.Total.Requests, ro.Rate, len(ro.Steps))}
		if ro.Failed > 0 {
			v.Limit = "failures: " + strings.Join(ro.Failures, "; ")
		} else if len(ro.Steps) < 7 {
			v.Limit = "the rollout did not finish (see Failures)"
		}
		out = append(out, v)
		worst, okAll, detail := 0.0, true, []string{}
		for _, st := range ro.Steps {
			if st.Counted == 0 || st.Green < 0 {
				continue
			}
			obs := float64(st.GreenAnswers) / float64(st.Counted)
			exp := float64(st.Green) / 100
			se := math.Sqrt(max(exp*(1-exp), 0.0001) / float64(st.Counted))
			dev := math.Abs(obs - exp)
			worst = max(worst, dev)
			if dev > 3*se+0.001 {
				okAll = false
			}
			detail = append(detail, fmt.Sprintf("%s %.1f %%", st.Name, 100*obs))
		}
		out = append(out, Verdict{Target: "rollout: observed split within 3 standard errors of the configured weight at each step",
			Met: okAll && len(detail) > 0, Figure: fmt.Sprintf("worst deviation %.1f pp; %s", 100*worst, strings.Join(detail, ", ")),
			Limit: "the weighted pick is off by more than sampling noise explains"})
	} else {
		skip("rollout: 0 failed requests", "scenario 4 not run")
	}

	if d := r.Deploy; d != nil && len(d.FirstOK) > 0 {
		m := medianDur(d.FirstOK)
		v := Verdict{Target: fmt.Sprintf("create → first 200 ≤ %s", targetFirstOK), Met: m <= targetFirstOK,
			Figure: fmt.Sprintf("median %s (%s)", fmtDur(m), joinDur(d.FirstOK))}
		if !v.Met {
			boot := "not measured"
			if r.R != nil && r.R.PlumberBoot > 0 {
				boot = fmtDur(r.R.PlumberBoot)
			}
			v.Limit = fmt.Sprintf("R itself: a plumber process of the same example takes %s from exec to its first 200 here; the rest is the CLI's upload, the pre-start package check and probing.%s", boot, busyNote(r))
		}
		out = append(out, v)
	} else {
		skip(fmt.Sprintf("create → first 200 ≤ %s", targetFirstOK), "scenario 5 not run")
	}

	out = append(out, containerVerdicts(r, skip)...)

	mem := r.Memory
	for _, name := range []string{"plumbline-https", "plumbline-http"} {
		idle, ok := mem.ServeIdle[name]
		if !ok {
			continue
		}
		out = append(out, Verdict{Target: fmt.Sprintf("%s: serve ≤ 60 MB RSS idle", name), Met: idle.RSS <= targetIdleRSS,
			Figure: fmt.Sprintf("%s RSS idle (peak so far %s)", sysinfo.Bytes(idle.RSS), sysinfo.Bytes(idle.HWM)),
			Limit:  "the Go runtime, SQLite and the gateway's pools as started; no profile was taken"})
		if run1, ok := mem.ServeRun1[name]; ok {
			out = append(out, Verdict{Target: fmt.Sprintf("%s: serve ≤ 150 MB RSS at peak in run 1", name), Met: run1.HWM <= targetPeakRSS,
				Figure: fmt.Sprintf("VmHWM %s after run 1 (RSS then %s; nginx master + workers peaked at %s)", sysinfo.Bytes(run1.HWM), sysinfo.Bytes(run1.RSS), sysinfo.Bytes(mem.NginxPeak)),
				Limit:  "connection buffers for 64 client connections plus the upstream pools, and garbage between GC cycles"})
		}
	}
	if len(mem.ServeIdle) == 0 {
		skip("plumbline serve memory", "scenario 1 not run")
	}
	return append(out, autoscaleVerdicts(r, skip)...)
}

func autoscaleVerdicts(r *Results, skip func(target, why string)) []Verdict {
	a := r.Autoscale
	if a == nil || len(a.Samples) == 0 {
		skip("autoscale: 0 failed requests under a 1 → 10 → 1 step", "scenario 10 not run")
		return nil
	}
	total := a.Low.Requests + a.High.Requests
	failed := Verdict{Target: "autoscale: 0 failed requests under a 1 → 10 → 1 step", Met: a.Failed() == 0,
		Figure: fmt.Sprintf("%d failed of %d (%s; %s)", a.Failed(), total, a.Low.CodesString(), a.High.CodesString())}
	if !failed.Met {
		failed.Limit = "requests failed while instances started or stopped"
	}
	shape := Verdict{Target: "autoscale: out and back to one instance, one change of direction (no flapping)",
		Met:    a.Back > 0 && a.Reversals == 1 && a.Peak > 1,
		Figure: fmt.Sprintf("peak %d desired instances; %d change(s) of direction; back at one %s after the step", a.Peak, a.Reversals, fmtSince(a.Back, a.StepDown))}
	if !shape.Met {
		shape.Limit = "see the decisions in section 10"
	}
	return []Verdict{failed, shape}
}

func gatewayVerdicts(r *Results, skip func(string, string)) []Verdict {
	g := r.Gateway
	if g == nil || len(g.Closed[vNginx]) == 0 {
		skip(fmt.Sprintf("gateway ≥ %.1f× nginx requests/s", targetGatewayRatio), "scenario 1 not run")
		skip(fmt.Sprintf("gateway ≤ %s added p50", fmtDur(targetAddedP50)), "scenario 1 not run")
		return nil
	}
	var out []Verdict
	for _, pair := range []struct {
		v, ref string
		want   float64
		label  string
	}{
		{vPlumblineHTTP, vNginx, targetGatewayRatio, "plain HTTP, like for like"},
		{vPlumblineHTTPS, vNginxTLS, targetHTTPSRatio, "HTTPS, the default, against nginx with TLS"},
	} {
		v, ref := pair.v, pair.ref
		refRPS := pick(g.Closed[ref], rps)
		if len(refRPS) == 0 {
			continue
		}
		rs := ratios(pick(g.Closed[v], rps), refRPS)
		m := medianF(rs)
		lo, hi := minMaxF(rs)
		verdict := Verdict{Target: fmt.Sprintf("%s ≥ %.1f× %s requests/s (%s)", v, pair.want, ref, pair.label), Met: m >= pair.want,
			Figure: fmt.Sprintf("%.2f× (%.0f vs %.0f req/s; repeats %.2f–%.2f)", m, medianF(pick(g.Closed[v], rps)), medianF(refRPS), lo, hi)}
		if !verdict.Met {
			verdict.Limit = fmt.Sprintf("CPU per request: plumbline %s vs %s %s (backend %s vs %s, load generator %s). The load generator, the proxy and the backends share %d cores, so requests/s follow the CPU each request costs all of them.",
				fmtDur(medianDur(g.ProxyCPU[v])), ref, fmtDur(medianDur(g.ProxyCPU[ref])), fmtDur(medianDur(g.BackendCPU[v])), fmtDur(medianDur(g.BackendCPU[ref])), fmtDur(medianDur(g.GenCPU[v])), r.Machine.Cores)
			if nl := pick(g.Closed[vPlumblineNoLog], rps); len(nl) > 0 && v == vPlumblineHTTP {
				verdict.Limit += fmt.Sprintf(" Without the access log plumbline does %.0f req/s (%.2f× nginx).", medianF(nl), medianF(ratios(nl, refRPS)))
			}
			if fl := pick(g.Closed[vPlumblineFast], rps); len(fl) > 0 && v == vPlumblineHTTP {
				verdict.Limit += fmt.Sprintf(" With --http1 fast (the gateway's own HTTP/1.1 loop) %.0f req/s (%.2f× nginx), CPU per request %s.", medianF(fl), medianF(ratios(fl, refRPS)), fmtDur(medianDur(g.ProxyCPU[vPlumblineFast])))
			}
			verdict.Limit += busyNote(r)
		}
		out = append(out, verdict)
	}
	directP50 := pick(g.Fixed[vDirect], p50)
	for _, v := range []string{vPlumblineHTTP, vPlumblineHTTPS} {
		added := medianDur(diffs(pick(g.Fixed[v], p50), directP50))
		ref := vNginx
		if v == vPlumblineHTTPS {
			ref = vNginxTLS
		}
		refAdded := medianDur(diffs(pick(g.Fixed[ref], p50), directP50))
		verdict := Verdict{Target: fmt.Sprintf("%s ≤ %s added p50 at %d req/s", v, fmtDur(targetAddedP50), g.Rate), Met: added <= targetAddedP50,
			Figure: fmt.Sprintf("%s (p50 %s vs direct %s; %s adds %s)", fmtDelta(added), fmtDur(medianDur(pick(g.Fixed[v], p50))), fmtDur(medianDur(directP50)), ref, fmtDelta(refAdded))}
		if !verdict.Met {
			verdict.Limit = fmt.Sprintf("plumbline spends %s of CPU per request at this rate (%s %s) on the HTTP server, auth, split, admission, proxying and its access log; on %d shared cores that time is also queueing.%s",
				fmtDur(medianDur(g.FixedProxyCPU[v])), ref, fmtDur(medianDur(g.FixedProxyCPU[ref])), r.Machine.Cores, busyNote(r))
			if v == vPlumblineHTTPS {
				verdict.Limit += " Over HTTPS each request also pays TLS record encryption and decryption (direct is plain HTTP)."
			}
		}
		out = append(out, verdict)
	}
	for _, v := range []string{vPlumblineHTTP} {
		cpu := medianDur(g.ProxyCPU[v])
		verdict := Verdict{Target: fmt.Sprintf("%s proxy CPU ≤ %s per request", v, fmtDur(targetProxyCPU)), Met: cpu > 0 && cpu <= targetProxyCPU,
			Figure: fmt.Sprintf("%s in the closed loop, %s at %d req/s (nginx %s and %s)", fmtDur(cpu), fmtDur(medianDur(g.FixedProxyCPU[v])), g.Rate,
				fmtDur(medianDur(g.ProxyCPU[vNginx])), fmtDur(medianDur(g.FixedProxyCPU[vNginx])))}
		if !verdict.Met {
			verdict.Limit = "the profile in this report says where it goes; of it, the net/http server and the socket reads and writes are Go's and the kernel's share." + busyNote(r)
		}
		out = append(out, verdict)
	}
	if pb, nb := medianDur(g.FixedBackendCPU[vPlumblineHTTP]), medianDur(g.FixedBackendCPU[vNginx]); nb > 0 {
		f := float64(pb) / float64(nb)
		verdict := Verdict{Target: fmt.Sprintf("backend CPU per request behind plumbline within %.1f× of behind nginx (at %d req/s)", targetBackendCPU, g.Rate),
			Met: f <= targetBackendCPU, Figure: fmt.Sprintf("%.2f× (%s vs %s; closed loop %s vs %s)", f, fmtDur(pb), fmtDur(nb),
				fmtDur(medianDur(g.BackendCPU[vPlumblineHTTP])), fmtDur(medianDur(g.BackendCPU[vNginx])))}
		if !verdict.Met {
			verdict.Limit = "how the gateway uses its connections to the instances: the writes and acknowledgements each request costs the backend." + busyNote(r)
		}
		out = append(out, verdict)
	}
	return out
}

func stormVerdicts(r *Results, skip func(string, string)) []Verdict {
	st := r.Storm
	if st == nil || st.Quiet.Requests == 0 {
		skip("storm: p99 within 2× of quiet", "scenario 8 not run")
		return nil
	}
	f := float64(st.Flood.P99) / float64(max(1, st.Quiet.P99))
	out := []Verdict{
		{Target: fmt.Sprintf("storm (%d silent + %d slowloris connections): another client's p99 within %.0f× of the quiet run", st.Silent, st.Slowloris, targetStormP99),
			Met:    st.Flood.Requests > 0 && f <= targetStormP99,
			Figure: fmt.Sprintf("%.2f× (median p99 of %d pairs of runs: %s vs %s quiet; p50 %s vs %s)", f, max(1, st.Pairs), fmtDur(st.Flood.P99), fmtDur(st.Quiet.P99), fmtDur(st.Flood.P50), fmtDur(st.Quiet.P50)),
			Limit:  stormLimit(st) + busyNote(r)},
		{Target: "storm: no 5xx and no transport error for the other client", Met: st.Flood.Count5xx() == 0 && st.Flood.Errors == 0 && st.Flood.OK > 0,
			Figure: fmt.Sprintf("%d × 5xx, %d transport errors (%s)", st.Flood.Count5xx(), st.Flood.Errors, st.Flood.CodesString()),
			Limit:  "see the server log"},
		{Target: fmt.Sprintf("storm: serve ≤ %s peak memory holding the flood", sysinfo.Bytes(targetPeakRSS)), Met: st.MemDuring.HWM > 0 && st.MemDuring.HWM <= targetPeakRSS,
			Figure: fmt.Sprintf("VmHWM %s (RSS %s before the flood, %s during it; the server held %.0f connections)", sysinfo.Bytes(st.MemDuring.HWM),
				sysinfo.Bytes(st.MemBefore.RSS), sysinfo.Bytes(st.MemDuring.RSS), st.OpenDuring),
			Limit: "each held slowloris connection costs a goroutine and its HTTP and TLS buffers; a silent one its descriptor and a small record"},
	}
	return out
}

// stormLimit says what the flood cost serve, in its own figures.
func stormLimit(st *StormResult) string {
	q, f := st.QuietServe, st.FloodServe
	if f.CPUPerRequest == 0 {
		return "see the server's CPU during the run."
	}
	return fmt.Sprintf("what the flood costs serve while it answers the other client: %s of CPU per answered request (%s quiet), %.1f read system calls per answered request (%.1f quiet: the rest are the slowloris clients' pieces, each a wake-up), %.0f goroutines (%.0f quiet), %.0f garbage collections in the run (%.0f quiet).",
		fmtDur(f.CPUPerRequest), fmtDur(q.CPUPerRequest), f.ReadsPerRequest, q.ReadsPerRequest, f.Goroutines, q.Goroutines, f.GCs, q.GCs)
}

func rVerdicts(r *Results, skip func(string, string)) []Verdict {
	rr := r.R
	if rr == nil || len(rr.Runs[1][rPlumbline]) == 0 {
		skip(fmt.Sprintf("plumbline → plumber ≥ %.0f× naive keep-alive requests/s", targetNaiveRatio), "scenario 2 not run")
		skip(fmt.Sprintf("plumbline → plumber within %.1f× of plumber with new connections", targetCloseFactor), "scenario 2 not run")
		return nil
	}
	var out []Verdict
	for _, n := range []int{1, 2} {
		runs := rr.Runs[n]
		if len(runs[rPlumbline]) == 0 {
			continue
		}
		pl := pick(runs[rPlumbline], rps)
		naive := medianF(ratios(pl, pick(runs[rNaive], rps)))
		v := Verdict{Target: fmt.Sprintf("plumbline → plumber ≥ %.0f× naive keep-alive requests/s (%d instance%s)", targetNaiveRatio, n, plural(n)),
			Met:    naive >= targetNaiveRatio,
			Figure: fmt.Sprintf("%.1f× (%.0f vs %.1f req/s)", naive, medianF(pl), medianF(pick(runs[rNaive], rps)))}
		if !v.Met {
			v.Limit = fmt.Sprintf("plumber itself: with a new connection per request it does %.0f req/s, and the in-R compute limit is %.0f/s per process.%s",
				medianF(pick(runs[rClose], rps)), rr.Limit.RPS, busyNote(r))
		}
		out = append(out, v)
		cl := ratios(pl, pick(runs[rClose], rps))
		m := medianF(cl)
		v = Verdict{Target: fmt.Sprintf("plumbline → plumber within %.1f× of plumber with new connections (requests/s, %d instance%s)", targetCloseFactor, n, plural(n)),
			Met: m >= 1/targetCloseFactor,
			Figure: fmt.Sprintf("plumbline/new-connection = %.2f (%.0f vs %.0f req/s; p50 %s vs %s)", m, medianF(pl), medianF(pick(runs[rClose], rps)),
				fmtDur(medianDur(pick(runs[rPlumbline], p50))), fmtDur(medianDur(pick(runs[rClose], p50))))}
		if !v.Met {
			v.Limit = fmt.Sprintf("each request crosses one more hop (client → plumbline over TLS → plumber), which costs CPU on the same %d cores that run R.%s", r.Machine.Cores, busyNote(r))
		}
		out = append(out, v)
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// fmtDur renders a duration with 3 significant digits in µs, ms or s.
func fmtDur(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d == 0:
		s = "0"
	case d < time.Millisecond:
		s = fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		s = trimFloat(float64(d)/float64(time.Millisecond)) + " ms"
	default:
		s = trimFloat(d.Seconds()) + " s"
	}
	if neg {
		s = "−" + s
	}
	return s
}

func trimFloat(f float64) string {
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

// fmtDelta renders a difference with its sign: +120 µs, −3 µs.
func fmtDelta(d time.Duration) string {
	if d < 0 {
		return fmtDur(d)
	}
	return "+" + fmtDur(d)
}

func joinDur(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmtDur(d)
	}
	return strings.Join(s, ", ")
}
