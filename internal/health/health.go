// Package health keeps each deployment's recent figures — requests, error
// rate, p50 and p99 latency over the last few minutes — from the gateway's
// own Prometheus metrics (plumbline_requests_total and
// plumbline_request_duration_seconds), for `online-deployment show`, `list`
// and the studio. Counters only grow, so recent figures are differences
// between the metrics now and a snapshot taken a window ago; a Sampler
// keeps those snapshots.
//
// It reads a prometheus.Gatherer and nothing else of plumbline: it must not
// import the gateway, the store or the API server.
package health

import (
	"context"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metric names the sampler reads (the gateway's, documented in
// docs/gateway.md).
const (
	requestsMetric = "plumbline_requests_total"
	durationMetric = "plumbline_request_duration_seconds"
)

// Figures are one deployment's recent figures.
type Figures struct {
	// Window is how far back they go: the sampler's window, or less just
	// after the server started.
	Window time.Duration
	// Requests answered in the window, and how many of them were errors: a
	// 5xx, a 424 (the model answered an error), a 408 (timeout) or a 429
	// (overload). A caller's mistake (400, 401, 404, 413, 422) is not an
	// error of the deployment.
	Requests, Errors int
	// P50 and P99 are latency quantiles over the window's requests,
	// interpolated within the histogram's buckets as Prometheus'
	// histogram_quantile does; zero when there were no requests.
	P50, P99 time.Duration
}

// ErrorRate is Errors / Requests (0 without requests).
func (f Figures) ErrorRate() float64 {
	if f.Requests == 0 {
		return 0
	}
	return float64(f.Errors) / float64(f.Requests)
}

// Sampler snapshots the metrics every Every and answers figures over the
// last Window. Create it with New and run Start.
type Sampler struct {
	g       prometheus.Gatherer
	window  time.Duration
	every   time.Duration
	log     *slog.Logger
	now     func() time.Time
	started time.Time

	mu    sync.Mutex // protects snaps
	snaps []snapshot // oldest first, none older than window + every
}

// key names a deployment.
type key struct{ endpoint, deployment string }

// counts are one deployment's cumulative metrics at one time.
type counts struct {
	requests, errors float64
	// buckets are cumulative histogram counts per upper bound; count is
	// the histogram's total.
	bounds  []float64
	buckets []float64
	count   float64
}

type snapshot struct {
	at   time.Time
	deps map[key]counts
}

// Config configures a Sampler; zero values take the defaults.
type Config struct {
	// Window is how far back figures go (default 5 minutes).
	Window time.Duration
	// Every is how often a snapshot is taken (default 15 s).
	Every  time.Duration
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// New returns a Sampler of g's metrics.
func New(g prometheus.Gatherer, cfg Config) *Sampler {
	if cfg.Window == 0 {
		cfg.Window = 5 * time.Minute
	}
	if cfg.Every == 0 {
		cfg.Every = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sampler{g: g, window: cfg.Window, every: cfg.Every, log: cfg.Logger, now: cfg.Now, started: cfg.Now()}
}

// Start takes a snapshot every Every until ctx ends.
func (s *Sampler) Start(ctx context.Context) error {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		s.Sample()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sample takes one snapshot now and forgets those older than the window
// needs.
func (s *Sampler) Sample() {
	snap, err := s.gather()
	if err != nil {
		s.log.Warn("health: reading the gateway's metrics", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snaps = append(s.snaps, snap)
	// Keep the newest snapshot older than the window as the baseline.
	cut := 0
	for i := range s.snaps {
		if snap.at.Sub(s.snaps[i].at) >= s.window {
			cut = i
		}
	}
	s.snaps = s.snaps[cut:]
}

// Figures returns a deployment's figures over the last window, measured
// against the metrics as they are now.
func (s *Sampler) Figures(endpoint, deployment string) Figures {
	now, err := s.gather()
	if err != nil {
		return Figures{}
	}
	k := key{endpoint, deployment}
	cur := now.deps[k]
	base, since := counts{}, s.started
	s.mu.Lock()
	for i := len(s.snaps) - 1; i >= 0; i-- {
		if now.at.Sub(s.snaps[i].at) >= s.window || i == 0 {
			base, since = s.snaps[i].deps[k], s.snaps[i].at
			break
		}
	}
	s.mu.Unlock()
	if cur.requests < base.requests || cur.count < base.count {
		base = counts{} // the deployment's metrics restarted (it was re-created)
	}
	f := Figures{
		Window:   now.at.Sub(since),
		Requests: int(math.Round(cur.requests - base.requests)),
		Errors:   int(math.Round(cur.errors - base.errors)),
	}
	if n := cur.count - base.count; n > 0 && len(cur.bounds) > 0 {
		delta := make([]float64, len(cur.buckets))
		for i := range cur.buckets {
			delta[i] = cur.buckets[i]
			if i < len(base.buckets) {
				delta[i] -= base.buckets[i]
			}
		}
		f.P50 = seconds(quantile(0.5, cur.bounds, delta, n))
		f.P99 = seconds(quantile(0.99, cur.bounds, delta, n))
	}
	return f
}

func seconds(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

// quantile estimates the q-quantile from cumulative bucket counts (upper
// bounds bounds, the last bucket +Inf implied by total), interpolating
// linearly within the bucket, as Prometheus' histogram_quantile does.
func quantile(q float64, bounds, cum []float64, total float64) float64 {
	rank := q * total
	i := sort.Search(len(cum), func(i int) bool { return cum[i] >= rank })
	if i == len(cum) {
		return bounds[len(bounds)-1] // in +Inf: the highest finite bound
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = bounds[i-1], cum[i-1]
	}
	in := cum[i] - below
	if in <= 0 {
		return bounds[i]
	}
	return lower + (bounds[i]-lower)*(rank-below)/in
}

// gather reads the gateway's metrics.
func (s *Sampler) gather() (snapshot, error) {
	fams, err := s.g.Gather()
	if err != nil {
		return snapshot{}, err
	}
	snap := snapshot{at: s.now(), deps: map[key]counts{}}
	for _, f := range fams {
		switch f.GetName() {
		case requestsMetric:
			for _, m := range f.GetMetric() {
				k, l := labels(m)
				c := snap.deps[k]
				v := m.GetCounter().GetValue()
				c.requests += v
				if isError(l["code"]) {
					c.errors += v
				}
				snap.deps[k] = c
			}
		case durationMetric:
			for _, m := range f.GetMetric() {
				k, _ := labels(m)
				c := snap.deps[k]
				h := m.GetHistogram()
				c.bounds, c.buckets = c.bounds[:0], c.buckets[:0]
				for _, b := range h.GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						continue
					}
					c.bounds = append(c.bounds, b.GetUpperBound())
					c.buckets = append(c.buckets, float64(b.GetCumulativeCount()))
				}
				c.count = float64(h.GetSampleCount())
				snap.deps[k] = c
			}
		}
	}
	return snap, nil
}

func labels(m *dto.Metric) (key, map[string]string) {
	l := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return key{l["endpoint"], l["deployment"]}, l
}

// isError says whether a gateway status counts against the deployment.
func isError(code string) bool {
	n, err := strconv.Atoi(code)
	if err != nil {
		return false
	}
	return n >= 500 || n == 424 || n == 408 || n == 429
}
