package harness

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"image/color"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/serve"
	"github.com/plumbline/plumbline/internal/autoscale"
)

const autoscaleEndpoint = "scalebench"

// AutoscalePlot is the file the autoscale scenario's plot is written to,
// next to the report.
const AutoscalePlot = "autoscale-steps.svg"

// The autoscale scenario's deployment: the Go backend taking 50 ms per
// request, two at once per instance, a target of 60 %: 1.2 requests in
// flight per instance, so one client wants one instance and ten want nine.
const (
	scaleDelay      = 50 * time.Millisecond
	scalePerInst    = 2
	scaleTarget     = 60
	scaleMax        = 12
	scaleLowClients = 1
	scaleHiClients  = 10
)

// ScaleSample is the desired and running instance counts at one moment.
type ScaleSample struct {
	At              time.Duration // since the load started
	Clients         int
	Desired, Actual int
}

// AutoscaleResult is scenario 10.
type AutoscaleResult struct {
	// Windows are the deployment's plumbline.autoscale settings (seconds).
	Stable, Panic, DownDelay int
	// Phase lengths: low load before the step, the step, and the most the
	// harness waits for the count to come back after it.
	Before, Step, After time.Duration
	Samples             []ScaleSample
	StepUp, StepDown    time.Duration // since the load started
	// Back is when the count was back at one instance after the step (0:
	// it was not within After).
	Back      time.Duration
	Low, High load.Stats // the one steady client over the whole run; the nine of the step
	Peak      int        // the highest desired count
	// Reversals counts the changes of direction of the desired count: one
	// is out then back; more is flapping.
	Reversals int
	Decisions []string // the autoscaler's events: "+12.3s scaled 1 → 9: …"
	// SVG is the plot of Samples (written to AutoscalePlot).
	SVG []byte
}

// Failed is the requests that did not answer 200.
func (a *AutoscaleResult) Failed() int { return a.Low.Failed() + a.High.Failed() }

// autoscale is scenario 10: a generic backend with scale_settings
// target_utilization under a step from one closed-loop client to ten and
// back; the desired and running instance counts are read from /metrics
// every 250 ms and plotted.
func (e *env) autoscale(ctx context.Context) error {
	c := e.cfg
	r := &AutoscaleResult{Stable: 10, Panic: 2, DownDelay: 5, Before: 10 * time.Second, Step: 30 * time.Second, After: 90 * time.Second}
	if c.Smoke {
		r.Stable, r.Panic, r.DownDelay = 2, 1, 0
		r.Before, r.Step, r.After = time.Second, 3*time.Second, 30*time.Second
	}
	e.res.Autoscale = r
	s, err := e.serveHTTPS(ctx)
	if err != nil {
		return err
	}
	key, err := e.createEndpoint(ctx, s, autoscaleEndpoint)
	if err != nil {
		return err
	}
	doc := genericDeployment("blue", autoscaleEndpoint, []string{e.backend, "--port", "{port}", "--delay", scaleDelay.String()}, scalePerInst, 1, nil)
	doc = strings.Replace(doc, "instance_count: 1\n", fmt.Sprintf(`scale_settings:
  type: target_utilization
  min_instances: 1
  max_instances: %d
  target_utilization_percentage: %d
  polling_interval: 1
plumbline:
  autoscale:
    stable_window: %d
    panic_window: %d
    scale_down_delay: %d
`, scaleMax, scaleTarget, r.Stable, r.Panic, r.DownDelay), 1)
	file, err := e.writeFile("yaml/autoscale-blue.yml", doc)
	if err != nil {
		return err
	}
	if _, err := s.CLI(ctx, "online-deployment", "create", "-f", file, "--all-traffic", "-o", "json"); err != nil {
		return err
	}
	target := scoreTarget(s, autoscaleEndpoint, key, scoreBody)
	opts := s.ClientOptions(true)

	start := time.Now()
	var mu sync.Mutex // protects clients and r.Samples
	clients := scaleLowClients
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			if m, err := s.Scrape(sampleCtx); err == nil {
				lbl := []string{`endpoint="` + autoscaleEndpoint + `"`, `deployment="blue"`}
				d, a := labelled(m, "plumbline_desired_instances", lbl...), labelled(m, "plumbline_actual_instances", lbl...)
				if d >= 0 && a >= 0 {
					mu.Lock()
					r.Samples = append(r.Samples, ScaleSample{At: time.Since(start), Clients: clients, Desired: int(d), Actual: int(a)})
					mu.Unlock()
				}
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	defer func() { stopSampling(); <-sampled }()

	lowCtx, stopLow := context.WithCancel(ctx)
	defer stopLow()
	low := make(chan load.Stats, 1)
	go func() {
		low <- load.ClosedLoop{Targets: []load.Target{target}, Conns: scaleLowClients, Duration: 24 * time.Hour, Client: opts}.Run(lowCtx)
	}()
	if err := sleepCtx(ctx, r.Before); err != nil {
		return err
	}
	r.StepUp = time.Since(start)
	mu.Lock()
	clients = scaleHiClients
	mu.Unlock()
	e.logf("autoscale: %d → %d clients", scaleLowClients, scaleHiClients)
	r.High = load.ClosedLoop{Targets: []load.Target{target}, Conns: scaleHiClients - scaleLowClients, Duration: r.Step, Client: opts}.Run(ctx)
	r.StepDown = time.Since(start)
	mu.Lock()
	clients = scaleLowClients
	mu.Unlock()
	e.logf("autoscale: %d → %d clients; waiting for one instance", scaleHiClients, scaleLowClients)
	deadline := time.Now().Add(r.After)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if d, err := s.API.GetDeployment(ctx, autoscaleEndpoint, "blue"); err == nil && d.ScaleStatus != nil &&
			d.ScaleStatus.DesiredInstances == 1 && d.ScaleStatus.Instances == 1 && serve.Ready(d) == 1 {
			r.Back = time.Since(start)
			break
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	// A few more samples at one instance: the plot shows it stays there.
	if r.Back > 0 {
		_ = sleepCtx(ctx, min(r.Before, 5*time.Second))
	}
	stopLow()
	r.Low = <-low
	stopSampling()
	<-sampled

	mu.Lock()
	defer mu.Unlock()
	desired := make([]int, 0, len(r.Samples))
	for _, sm := range r.Samples {
		desired = append(desired, sm.Desired)
		r.Peak = max(r.Peak, sm.Desired)
	}
	r.Reversals = autoscale.Reversals(desired)
	if evs, err := s.API.Events(ctx, api.EventFilter{Endpoint: autoscaleEndpoint, Deployment: "blue"}); err == nil {
		slices.SortFunc(evs, func(a, b api.Event) int { return cmp.Compare(a.ID, b.ID) })
		for _, ev := range evs {
			if ev.Reason == "Scaled" && strings.Contains(ev.Message, "→") && !ev.Time.Before(start) {
				r.Decisions = append(r.Decisions, fmt.Sprintf("+%.1fs %s", ev.Time.Sub(start).Seconds(), ev.Message))
			}
		}
	}
	if r.SVG, err = r.plot(); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	e.logf("autoscale: peak %d instances, %d change(s) of direction, back at one %s after the step; %d requests, %d failed",
		r.Peak, r.Reversals, fmtSince(r.Back, r.StepDown), r.Low.Requests+r.High.Requests, r.Failed())
	if r.Back == 0 {
		return fmt.Errorf("the deployment was not back at one instance %s after the load fell", r.After)
	}
	return nil
}

// fmtSince is back-from, or "never" when back is 0.
func fmtSince(back, from time.Duration) string {
	if back == 0 {
		return "never"
	}
	return fmtDur(back - from)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// labelled returns the value of the sample of metric name carrying every
// label of lbl (`name="value"`), or -1.
func labelled(scrape, name string, lbl ...string) float64 {
	for _, line := range strings.Split(scrape, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		all := true
		for _, l := range lbl {
			all = all && slices.Contains(strings.Split(labels, ","), l)
		}
		if !all {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			return f
		}
	}
	return -1
}

// plot draws the clients, the desired and the running instances over time
// as an SVG.
func (r *AutoscaleResult) plot() ([]byte, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Instances under a step of %d → %d → %d closed-loop clients", scaleLowClients, scaleHiClients, scaleLowClients)
	p.X.Label.Text = "seconds since the load started"
	p.Y.Label.Text = "count"
	p.Y.Min = 0
	// Room above the lines for the legend.
	p.Y.Max = 1.4 * float64(max(scaleHiClients, r.Peak))
	p.Add(plotter.NewGrid())
	series := []struct {
		name  string
		pick  func(ScaleSample) int
		color color.Color
		dash  []vg.Length
		width vg.Length
	}{
		{"clients", func(s ScaleSample) int { return s.Clients }, color.Gray{Y: 170}, nil, vg.Points(4)},
		{"desired instances", func(s ScaleSample) int { return s.Desired }, color.RGBA{R: 0xd9, G: 0x5f, B: 0x02, A: 255}, []vg.Length{vg.Points(5), vg.Points(3)}, vg.Points(1.5)},
		{"running instances", func(s ScaleSample) int { return s.Actual }, color.RGBA{R: 0x1b, G: 0x7a, B: 0x8c, A: 255}, nil, vg.Points(1.5)},
	}
	for _, se := range series {
		xy := make(plotter.XYs, len(r.Samples))
		for i, s := range r.Samples {
			xy[i] = plotter.XY{X: s.At.Seconds(), Y: float64(se.pick(s))}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		l.StepStyle = plotter.PostStep
		l.Color, l.Dashes, l.Width = se.color, se.dash, se.width
		p.Add(l)
		p.Legend.Add(se.name, l)
	}
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(6)
	var b bytes.Buffer
	wt, err := p.WriterTo(7*vg.Inch, 3.2*vg.Inch, "svg")
	if err != nil {
		return nil, err
	}
	if _, err := wt.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
