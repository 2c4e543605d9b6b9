package connlimit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Refusal and closing reasons, the reason label of the metrics.
const (
	reasonMaxConns = iota
	reasonPerAddr
	reasonEvictedIdle
	reasonEvictedSilent
	reasonFirstByteTimeout
	numReasons
)

var reasonNames = [numReasons]string{
	reasonMaxConns:         "max_connections",
	reasonPerAddr:          "per_address",
	reasonEvictedIdle:      "evicted_idle",
	reasonEvictedSilent:    "evicted_silent",
	reasonFirstByteTimeout: "first_byte_timeout",
}

// metrics are the listener's collectors, with their children resolved
// once.
type metrics struct {
	open       prometheus.Gauge
	handshakes prometheus.Gauge
	refused    [numReasons]prometheus.Counter // only max_connections and per_address are used
	closed     [numReasons]prometheus.Counter // only the evictions and timeouts are used
	h2errors   *prometheus.CounterVec
	slowHeads  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry() // kept, never exposed
	}
	m := &metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plumbline_connections_open",
			Help: "Client connections open on the listener.",
		}),
		handshakes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "plumbline_tls_handshakes_in_progress",
			Help: "TLS handshakes holding a slot (from the ClientHello to the server's first flight).",
		}),
		h2errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plumbline_http2_errors_total",
			Help: "HTTP/2 protocol errors by type, as net/http counts them.",
		}, []string{"type"}),
		slowHeads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plumbline_http_slow_heads_total",
			Help: "HTTP/1 request heads that kept arriving in small pieces for over a second (slowloris) and were read once a second from then on.",
		}),
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumbline_connections_refused_total",
		Help: "Client connections closed as soon as accepted: the listener held its maximum with nothing to close, or the client address held its own.",
	}, []string{"reason"})
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plumbline_connections_closed_total",
		Help: "Client connections the listener closed: idle or silent ones to make room, silent ones after the first-byte timeout.",
	}, []string{"reason"})
	for _, c := range []prometheus.Collector{m.open, m.handshakes, m.h2errors, m.slowHeads, refused, closed} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			switch c {
			case refused:
				refused = are.ExistingCollector.(*prometheus.CounterVec)
			case closed:
				closed = are.ExistingCollector.(*prometheus.CounterVec)
			case m.open:
				m.open = are.ExistingCollector.(prometheus.Gauge)
			case m.handshakes:
				m.handshakes = are.ExistingCollector.(prometheus.Gauge)
			case m.h2errors:
				m.h2errors = are.ExistingCollector.(*prometheus.CounterVec)
			case m.slowHeads:
				m.slowHeads = are.ExistingCollector.(prometheus.Counter)
			}
		}
	}
	for _, r := range []int{reasonMaxConns, reasonPerAddr} {
		m.refused[r] = refused.WithLabelValues(reasonNames[r])
	}
	for _, r := range []int{reasonEvictedIdle, reasonEvictedSilent, reasonFirstByteTimeout} {
		m.closed[r] = closed.WithLabelValues(reasonNames[r])
	}
	return m, nil
}

func (m *metrics) h2Error(errType string) { m.h2errors.WithLabelValues(errType).Inc() }
