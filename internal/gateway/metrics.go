package gateway

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plumbline/plumbline/internal/promreg"
)

// metrics are the gateway's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec   // endpoint, deployment, code, model_code
	duration *prometheus.HistogramVec // endpoint, deployment
	queue    *prometheus.GaugeVec     // endpoint, deployment
	inflight *prometheus.GaugeVec     // endpoint, deployment
	ready    *prometheus.GaugeVec     // endpoint, deployment
	mirrored *prometheus.CounterVec   // endpoint, deployment, result
	// coldStart and capacityWait are the autoscaling histograms.
	coldStart    *prometheus.HistogramVec // endpoint, deployment
	capacityWait *prometheus.HistogramVec // endpoint, deployment
}

// coldStartBuckets span the lean R runtime's fork (tens of ms) to a large
// model's load (two minutes).
var coldStartBuckets = []float64{.05, .1, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120}

// Mirror results, the result label of plumbline_mirrored_requests_total.
const (
	mirrorSent    = "sent"    // the mirror deployment answered 2xx
	mirrorDropped = "dropped" // the mirror backlog or the deployment's admission was full
	mirrorError   = "error"   // non-2xx, timeout or connection failure
)

// durationBuckets span a fast R model (1 ms) to Azure's maximum timeout (180 s).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 180}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry() // collected, never exposed
	}
	dl := []string{"endpoint", "deployment"}
	m := &metrics{}
	var err error
	if m.requests, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumbline_requests_total",
		Help: "Scoring requests by endpoint, deployment, the gateway's status code and the model's status code (empty when the model did not answer).",
	}, []string{"endpoint", "deployment", "code", "model_code"})); err != nil {
		return nil, err
	}
	if m.duration, err = promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "plumbline_request_duration_seconds",
		Help:    "Time from receipt of a scoring request to the end of its response, including the queue.",
		Buckets: durationBuckets,
	}, dl)); err != nil {
		return nil, err
	}
	if m.queue, err = promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "plumbline_queue_depth",
		Help: "Requests admitted and waiting for an instance slot.",
	}, dl)); err != nil {
		return nil, err
	}
	if m.inflight, err = promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "plumbline_inflight_requests",
		Help: "Requests dispatched to an instance and not yet answered.",
	}, dl)); err != nil {
		return nil, err
	}
	if m.ready, err = promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "plumbline_ready_instances",
		Help: "Ready instances the gateway dispatches to.",
	}, dl)); err != nil {
		return nil, err
	}
	if m.coldStart, err = promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "plumbline_cold_start_seconds",
		Help:    "Cold starts seen by the gateway: from the first request that waited while the deployment had no ready instance to the first ready instance.",
		Buckets: coldStartBuckets,
	}, dl)); err != nil {
		return nil, err
	}
	if m.capacityWait, err = promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "plumbline_capacity_wait_seconds",
		Help:    "Time requests that queued waited for an instance slot (requests dispatched at once are not counted).",
		Buckets: durationBuckets,
	}, dl)); err != nil {
		return nil, err
	}
	if m.mirrored, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumbline_mirrored_requests_total",
		Help: "Mirrored (shadow) copies of live requests by result: sent, dropped or error.",
	}, []string{"endpoint", "deployment", "result"})); err != nil {
		return nil, err
	}
	return m, nil
}

// poolMetrics are one deployment's children, looked up once per pool so that
// the request path never hashes label values.
type poolMetrics struct {
	requests      codeCounters
	duration      prometheus.Observer
	queue         prometheus.Gauge
	inflight      prometheus.Gauge
	ready         prometheus.Gauge
	mirrorSent    prometheus.Counter
	mirrorDropped prometheus.Counter
	mirrorError   prometheus.Counter
	coldStart     prometheus.Observer
	capacityWait  prometheus.Observer
}

func (m *metrics) forPool(endpoint, deployment string) *poolMetrics {
	labels := prometheus.Labels{"endpoint": endpoint, "deployment": deployment}
	return &poolMetrics{
		requests:      codeCounters{vec: m.requests.MustCurryWith(labels)},
		duration:      m.duration.WithLabelValues(endpoint, deployment),
		queue:         m.queue.WithLabelValues(endpoint, deployment),
		inflight:      m.inflight.WithLabelValues(endpoint, deployment),
		ready:         m.ready.WithLabelValues(endpoint, deployment),
		mirrorSent:    m.mirrored.WithLabelValues(endpoint, deployment, mirrorSent),
		mirrorDropped: m.mirrored.WithLabelValues(endpoint, deployment, mirrorDropped),
		mirrorError:   m.mirrored.WithLabelValues(endpoint, deployment, mirrorError),
		coldStart:     m.coldStart.WithLabelValues(endpoint, deployment),
		capacityWait:  m.capacityWait.WithLabelValues(endpoint, deployment),
	}
}

// forget removes a retired deployment's gauges; its counters stay.
func (m *metrics) forget(endpoint, deployment string) {
	m.queue.DeleteLabelValues(endpoint, deployment)
	m.inflight.DeleteLabelValues(endpoint, deployment)
	m.ready.DeleteLabelValues(endpoint, deployment)
}

// codeCounters caches the request counter of each (code, model_code) pair
// seen by one deployment: a lock-free map read on a hit, copy-on-write on a miss.
type codeCounters struct {
	vec *prometheus.CounterVec // curried with endpoint and deployment
	mu  sync.Mutex             // serialises misses
	m   atomic.Pointer[map[uint32]prometheus.Counter]
}

func (c *codeCounters) get(code, modelCode int) prometheus.Counter {
	k := uint32(code)<<16 | uint32(modelCode)
	if m := c.m.Load(); m != nil {
		if ctr, ok := (*m)[k]; ok {
			return ctr
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if ctr, ok := (*old)[k]; ok {
			return ctr
		}
	}
	ctr := c.vec.WithLabelValues(codeLabel(code), codeLabel(modelCode))
	next := make(map[uint32]prometheus.Counter, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[k] = ctr
	c.m.Store(&next)
	return ctr
}

func lenOf(m *map[uint32]prometheus.Counter) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// codeLabels holds "100"…"599" so that labels and headers never format a code.
var codeLabels = func() (s [600]string) {
	for i := 100; i < len(s); i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// codeLabel returns the decimal form of an HTTP status code, "" for 0.
func codeLabel(code int) string {
	if code > 0 && code < len(codeLabels) && codeLabels[code] != "" {
		return codeLabels[code]
	}
	if code == 0 {
		return ""
	}
	return strconv.Itoa(code)
}
