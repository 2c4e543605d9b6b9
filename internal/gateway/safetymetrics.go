package gateway

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plumbline/plumbline/internal/compare"

	"github.com/plumbline/plumbline/internal/promreg"
)

// safetyMetrics are the shadow comparison's, capture's and rollout hold's
// Prometheus collectors. Each gateway counts its own; Prometheus adds
// gateways up (the store-backed figures of `online-endpoint compare` do the
// same for plumbline itself).
type safetyMetrics struct {
	pairs       *prometheus.CounterVec   // endpoint, live, shadow, result
	predictions *prometheus.CounterVec   // endpoint, live, shadow, result
	delta       *prometheus.HistogramVec // endpoint, live, shadow
	flips       *prometheus.CounterVec   // endpoint, live, shadow, live_class, shadow_class
	latency     *prometheus.HistogramVec // endpoint, live, shadow, side
	capture     *prometheus.CounterVec   // endpoint, deployment, result
	trips       *prometheus.CounterVec   // endpoint, deployment

	mu   sync.Mutex // protects caps
	caps map[[2]string]*captureCounters
}

type captureCounters struct{ written, dropped, failed prometheus.Counter }

// deltaBuckets span 1e-9 to 1e3 in factors of 10.
var deltaBuckets = prometheus.ExponentialBuckets(1e-9, 10, 13)

func newSafetyMetrics(reg prometheus.Registerer) (*safetyMetrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	pl := []string{"endpoint", "live", "shadow"}
	m := &safetyMetrics{caps: map[[2]string]*captureCounters{}}
	var err error
	if m.pairs, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumbline_shadow_pairs_total",
		Help: "Mirrored requests by how their answers compared with the live ones: agree, disagree, incomparable (an error or non-JSON answer), refused (the shadow's input contract) or dropped (not compared: a full queue).",
	}, append(pl, "result"))); err != nil {
		return nil, err
	}
	if m.predictions, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumbline_shadow_predictions_total",
		Help: "Predictions compared between a live deployment and its shadow, by result: agree or disagree.",
	}, append(pl, "result"))); err != nil {
		return nil, err
	}
	if m.delta, err = promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "plumbline_shadow_abs_delta",
		Help:    "Absolute differences between the numbers of live and shadow answers.",
		Buckets: deltaBuckets,
	}, pl)); err != nil {
		return nil, err
	}
	if m.flips, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumbline_shadow_class_flips_total",
		Help: "Categorical predictions whose class differs between the live and the shadow answer (at most 32 classes a side; more count as (other)).",
	}, append(pl, "live_class", "shadow_class"))); err != nil {
		return nil, err
	}
	if m.latency, err = promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "plumbline_shadow_duration_seconds",
		Help:    "Time to answer of mirrored requests, live side and shadow side.",
		Buckets: durationBuckets,
	}, append(pl, "side"))); err != nil {
		return nil, err
	}
	if m.capture, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumbline_capture_records_total",
		Help: "Captured request/response pairs by result: written, dropped (the capture queue was full; the request was not slowed) or failed (the sink refused it).",
	}, []string{"endpoint", "deployment", "result"})); err != nil {
		return nil, err
	}
	if m.trips, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumbline_rollout_gate_trips_total",
		Help: "Rollout steps whose candidate breached a gate over this gateway's own sample.",
	}, []string{"endpoint", "deployment"})); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *safetyMetrics) pair(p *pairJob, result string) prometheus.Counter {
	return m.pairs.WithLabelValues(p.endpoint, p.live.name, p.shadow.name, result)
}

// observePair records a compared pair (on a comparison worker).
func (m *safetyMetrics) observePair(p *pairJob, o *compare.Outcome) {
	m.latency.WithLabelValues(p.endpoint, p.live.name, p.shadow.name, "live").Observe(p.liveHalf.seconds)
	if !p.dropped && !p.refused {
		m.latency.WithLabelValues(p.endpoint, p.live.name, p.shadow.name, "shadow").Observe(p.shadowHalf.seconds)
	}
	if !o.Comparable {
		return
	}
	m.predictions.WithLabelValues(p.endpoint, p.live.name, p.shadow.name, "agree").Add(float64(o.Agreed))
	m.predictions.WithLabelValues(p.endpoint, p.live.name, p.shadow.name, "disagree").Add(float64(o.Predictions - o.Agreed))
	if len(o.Deltas) > 0 {
		h := m.delta.WithLabelValues(p.endpoint, p.live.name, p.shadow.name)
		for _, d := range o.Deltas {
			h.Observe(d)
		}
	}
}

func (m *safetyMetrics) flip(p *pairJob, live, shadow string) {
	m.flips.WithLabelValues(p.endpoint, p.live.name, p.shadow.name, live, shadow).Inc()
}

// forCapture returns one deployment's capture counters, looked up once.
func (m *safetyMetrics) forCapture(endpoint, deployment string) *captureCounters {
	k := [2]string{endpoint, deployment}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.caps[k]
	if c == nil {
		c = &captureCounters{
			written: m.capture.WithLabelValues(endpoint, deployment, "written"),
			dropped: m.capture.WithLabelValues(endpoint, deployment, "dropped"),
			failed:  m.capture.WithLabelValues(endpoint, deployment, "failed"),
		}
		m.caps[k] = c
	}
	return c
}
