package reconcile

import (
	"context"
	"time"
)

// SampleTester sends a deployment's sample request (plumbline.sample_request)
// to one instance. The reconciler calls it when an instance of a plan with a
// sample request first passes its readiness probe, before the instance joins
// the pool: until the sample request answers 2xx the instance gets no
// traffic and the deployment is not Succeeded. A non-nil error says what the
// instance answered; in a creation or update it fails the deployment.
type SampleTester interface {
	TestSample(ctx context.Context, t SampleTarget) error
}

// SampleTarget is one instance and the request to send it.
type SampleTarget struct {
	Endpoint, Deployment, Instance string
	// Addr is the instance's address: "host:port" or "unix:/path".
	Addr string
	// Path is the scoring route's path.
	Path string
	// Body is the JSON request body.
	Body []byte
	// Timeout is the deployment's request timeout.
	Timeout time.Duration
}

// needsSample reports whether in must answer the sample request before it
// may be ready: it has not yet, and it is not ready (an instance re-adopted
// while serving after a restart of plumbline keeps serving).
func (r *Reconciler) needsSample(in *instance) bool {
	if r.cfg.Sample == nil || len(in.plan.SampleRequest) == 0 {
		return false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return !in.samplePassed && !in.ready
}

// testSample sends the sample request to in and records the outcome: a
// failure is kept in sampleFailed (the pass fails a creation or update with
// it) and returned as a probe failure, so the instance stays out of the pool.
func (r *Reconciler) testSample(ctx context.Context, in *instance) probeResult {
	err := r.cfg.Sample.TestSample(ctx, SampleTarget{
		Endpoint: in.endpoint, Deployment: in.deployment, Instance: in.name,
		Addr: in.addr, Path: in.plan.Scoring.Path, Body: in.plan.SampleRequest,
		Timeout: in.plan.RequestTimeout,
	})
	in.mu.Lock()
	defer in.mu.Unlock()
	if err != nil {
		in.sampleFailed = err.Error()
		return probeResult{detail: "sample request: " + err.Error()}
	}
	in.samplePassed, in.sampleFailed = true, ""
	return probeResult{ok: true}
}
