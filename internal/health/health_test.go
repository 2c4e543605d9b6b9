package health

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics registers collectors shaped like the gateway's.
func metrics(t *testing.T) (*prometheus.Registry, *prometheus.CounterVec, *prometheus.HistogramVec) {
	t.Helper()
	reg := prometheus.NewRegistry()
	req := prometheus.NewCounterVec(prometheus.CounterOpts{Name: requestsMetric, Help: "h"}, []string{"endpoint", "deployment", "code", "model_code"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: durationMetric, Help: "h",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 180}}, []string{"endpoint", "deployment"})
	reg.MustRegister(req, dur)
	return reg, req, dur
}

func TestFigures(t *testing.T) {
	reg, req, dur := metrics(t)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := New(reg, Config{Window: 5 * time.Minute, Every: time.Minute, Now: func() time.Time { return now }})
	serve := func(code string, n int, seconds float64) {
		for i := 0; i < n; i++ {
			req.WithLabelValues("cars", "blue", code, "").Inc()
			dur.WithLabelValues("cars", "blue").Observe(seconds)
		}
	}

	s.Sample()
	if f := s.Figures("cars", "blue"); f.Requests != 0 || f.P50 != 0 || f.ErrorRate() != 0 {
		t.Errorf("no traffic yet: %+v", f)
	}

	// An old burst of failures, then it ages out of the window.
	serve("424", 50, 0.003)
	for i := 0; i < 6; i++ {
		now = now.Add(time.Minute)
		s.Sample()
	}
	serve("200", 98, 0.020) // 20 ms, in the (10 ms, 25 ms] bucket
	serve("503", 1, 0.001)
	serve("429", 1, 0.001)
	serve("401", 3, 0.001) // the caller's mistake: not an error, but a request
	now = now.Add(30 * time.Second)
	f := s.Figures("cars", "blue")
	if f.Requests != 103 || f.Errors != 2 {
		t.Errorf("requests %d errors %d, want 103 and 2 (the 424s are older than the window)", f.Requests, f.Errors)
	}
	if f.Window != 5*time.Minute+30*time.Second {
		t.Errorf("window %s, want 5m30s (back to the newest snapshot at least 5 minutes old)", f.Window)
	}
	if f.P50 < 10*time.Millisecond || f.P50 > 25*time.Millisecond || f.P99 < 10*time.Millisecond || f.P99 > 25*time.Millisecond {
		t.Errorf("p50 %s p99 %s, want both within the 10–25 ms bucket", f.P50, f.P99)
	}
	if other := s.Figures("cars", "green"); other.Requests != 0 {
		t.Errorf("green has no traffic: %+v", other)
	}
}

func TestFiguresAfterRecreation(t *testing.T) {
	reg, req, dur := metrics(t)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := New(reg, Config{Window: 5 * time.Minute, Every: time.Minute, Now: func() time.Time { return now }})
	for i := 0; i < 10; i++ {
		req.WithLabelValues("cars", "blue", "200", "200").Inc()
		dur.WithLabelValues("cars", "blue").Observe(0.01)
	}
	s.Sample()
	// The deployment is deleted and created again: its series restart.
	req.DeleteLabelValues("cars", "blue", "200", "200")
	dur.DeleteLabelValues("cars", "blue")
	req.WithLabelValues("cars", "blue", "500", "").Inc()
	dur.WithLabelValues("cars", "blue").Observe(0.01)
	now = now.Add(time.Minute)
	if f := s.Figures("cars", "blue"); f.Requests != 1 || f.Errors != 1 {
		t.Errorf("after the series restarted: %+v, want 1 request, 1 error", f)
	}
}

func TestQuantile(t *testing.T) {
	bounds := []float64{1, 2, 4}
	cum := []float64{10, 20, 20}
	for _, tt := range []struct{ q, want float64 }{{0.5, 1}, {0.25, 0.5}, {0.75, 1.5}, {1, 2}} {
		if got := quantile(tt.q, bounds, cum, 20); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := quantile(0.99, bounds, cum, 30); got != 4 {
		t.Errorf("a quantile in +Inf = %v, want the highest bound 4", got)
	}
}
