package server

import (
	"math"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/apiserver"
	"github.com/plumbline/plumbline/internal/health"
)

// healthAdapter presents the health sampler's figures to the API.
type healthAdapter struct{ s *health.Sampler }

// healthOf is the API's Health for s; nil (no figures) without a sampler.
func healthOf(s *health.Sampler) apiserver.Health {
	if s == nil {
		return nil
	}
	return healthAdapter{s}
}

func (a healthAdapter) DeploymentHealth(endpoint, deployment string) *api.DeploymentHealth {
	f := a.s.Figures(endpoint, deployment)
	if f.Requests == 0 {
		return nil // nothing to tell: show and list print "-"
	}
	out := &api.DeploymentHealth{
		WindowSeconds: int(math.Round(f.Window.Seconds())),
		Requests:      f.Requests,
		Errors:        f.Errors,
		ErrorRate:     math.Round(f.ErrorRate()*10000) / 10000,
	}
	p50 := math.Round(float64(f.P50.Microseconds())) / 1000
	p99 := math.Round(float64(f.P99.Microseconds())) / 1000
	out.P50Ms, out.P99Ms = &p50, &p99
	return out
}
