package autoscale

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plumbline/plumbline/internal/promreg"
)

// Metrics are the autoscaler's Prometheus collectors, per autoscaled
// deployment. A nil *Metrics keeps nothing.
type Metrics struct {
	desired     *prometheus.GaugeVec   // endpoint, deployment
	actual      *prometheus.GaugeVec   // endpoint, deployment
	panic       *prometheus.GaugeVec   // endpoint, deployment
	concurrency *prometheus.GaugeVec   // endpoint, deployment, window
	decisions   *prometheus.CounterVec // endpoint, deployment, direction
}

// NewMetrics registers the autoscaler's metrics with reg (or finds them
// there: a new leader term reuses them).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	dl := []string{"endpoint", "deployment"}
	m := &Metrics{
		desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "plumbline_desired_instances",
			Help: "Instances the autoscaler wants an autoscaled deployment to run.",
		}, dl),
		actual: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "plumbline_actual_instances",
			Help: "Instances an autoscaled deployment runs (ready or starting), as the autoscaler last saw them.",
		}, dl),
		panic: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "plumbline_autoscaler_panic",
			Help: "1 while the autoscaler is in panic mode for a deployment (a burst: it scales out, never in).",
		}, dl),
		concurrency: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "plumbline_autoscaler_concurrency",
			Help: "Average requests in flight and queued over every gateway, over the stable and the panic window.",
		}, append(dl, "window")),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plumbline_autoscaler_decisions_total",
			Help: "Changes of an autoscaled deployment's desired instance count, by direction (up or down).",
		}, append(dl, "direction")),
	}
	var err error
	if m.desired, err = promreg.Register(reg, m.desired); err != nil {
		return nil, err
	}
	if m.actual, err = promreg.Register(reg, m.actual); err != nil {
		return nil, err
	}
	if m.panic, err = promreg.Register(reg, m.panic); err != nil {
		return nil, err
	}
	if m.concurrency, err = promreg.Register(reg, m.concurrency); err != nil {
		return nil, err
	}
	if m.decisions, err = promreg.Register(reg, m.decisions); err != nil {
		return nil, err
	}
	return m, nil
}

// observe sets the gauges after a pass; dec is nil when the deployment did
// not decide in it.
func (m *Metrics) observe(v *view, ds *depScale, dec *decision) {
	if m == nil {
		return
	}
	e, d := v.d.Endpoint, v.d.Name
	m.actual.WithLabelValues(e, d).Set(float64(v.actual))
	if dec == nil {
		return
	}
	m.desired.WithLabelValues(e, d).Set(float64(dec.desired))
	p := 0.0
	if dec.panicking {
		p = 1
	}
	m.panic.WithLabelValues(e, d).Set(p)
	m.concurrency.WithLabelValues(e, d, "stable").Set(dec.stable)
	m.concurrency.WithLabelValues(e, d, "panic").Set(dec.panic)
}

// decided counts a change of the desired count.
func (m *Metrics) decided(v *view, dec decision) {
	if m == nil {
		return
	}
	dir := "down"
	if dec.desired > dec.was {
		dir = "up"
	}
	m.decisions.WithLabelValues(v.d.Endpoint, v.d.Name, dir).Inc()
}

// forget removes a deployment's gauges once it is no longer autoscaled.
func (m *Metrics) forget(endpoint, deployment string) {
	if m == nil {
		return
	}
	m.desired.DeleteLabelValues(endpoint, deployment)
	m.actual.DeleteLabelValues(endpoint, deployment)
	m.panic.DeleteLabelValues(endpoint, deployment)
	m.concurrency.DeleteLabelValues(endpoint, deployment, "stable")
	m.concurrency.DeleteLabelValues(endpoint, deployment, "panic")
}
