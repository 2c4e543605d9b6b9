package gateway

import (
	"time"

	"github.com/plumbline/plumbline/internal/contract"
)

// Snapshot is the gateway's complete routing table. It is immutable once
// passed to Gateway.Update: the caller builds a new Snapshot for every change
// and the gateway swaps it in atomically. A request reads one snapshot for its
// whole life.
type Snapshot struct {
	// Endpoints by name, lower-case.
	Endpoints map[string]*Endpoint
}

// Endpoint is one scoring endpoint.
type Endpoint struct {
	Name string
	// ID and TokenGeneration are the endpoint's identity and token
	// generation: an aml_token is accepted only for the ID and generation it
	// was issued for (a re-created endpoint, or one whose tokens were
	// revoked, refuses older tokens). Empty and zero are a valid pair.
	ID              string
	TokenGeneration int64
	// AuthMode is "key", "aml_token" or "aad_token"; empty means "key". Any
	// other value refuses every request with 401.
	AuthMode string
	// Keys are the accepted keys in key mode (primary, secondary). Compared in
	// constant time. Empty strings never match.
	Keys []string
	// Traffic maps deployment name to percent; the values sum to 0 or 100.
	// Entries naming no deployment in Deployments are ignored.
	Traffic map[string]int
	// Mirror maps at most one deployment name to a percent (<= 50) of live
	// requests copied to it, responses discarded.
	Mirror map[string]int
	// Deployments by name, lower-case.
	Deployments map[string]*Deployment
	// Generation is the endpoint's generation: it changes with every
	// change of its traffic, so the figures a gateway measures for rollouts
	// and shadow comparisons are kept per generation (a traffic epoch).
	Generation int64
	// Compare says how mirrored answers are compared with the live ones;
	// nil means the whole answer, numbers within 1e-9.
	Compare *Compare
	// Rollout, if set, is a progressive rollout's current step.
	Rollout *Rollout
}

// Compare is an endpoint's comparison settings (plumbline.compare).
type Compare struct {
	// Path is a JSONPath selecting the predictions; "" means the whole
	// answer, unwrapped.
	Path string
	// Tolerance and RelativeTolerance bound the difference under which
	// two numbers agree; zero means exact.
	Tolerance, RelativeTolerance float64
}

// Rollout is a running progressive rollout's current step, as the data
// plane enforces it.
type Rollout struct {
	// Candidate is the deployment rolled out (lower-case).
	Candidate string
	// Shadow is set during a shadow step: the candidate receives mirrored
	// copies only.
	Shadow bool
	// MinRequests is the step's sample: on each gateway the candidate gets
	// at most this many live requests until they are answered and judged;
	// meanwhile its share goes to Fallback. Zero or less means no hold.
	MinRequests int
	// Fallback is the split the rollout started from (the candidate not
	// in it): where the candidate's share goes while its sample is being
	// answered, and for good once a gate is breached on this gateway.
	Fallback map[string]int
	// Gates judged over the sample (see figures.Gates).
	MaxErrorRate, MaxLatencyRatio, MaxContractViolationRate float64
}

// Deployment is one deployment of an endpoint as the data plane needs it.
type Deployment struct {
	Name string
	// ScoringPath is the inference_config scoring_route path, e.g. "/score";
	// empty means "/score".
	ScoringPath string
	// OpenAPIPath, if set, is where the instance serves its OpenAPI document
	// (plumber: "/openapi.json"); empty means /swagger.json answers 404.
	OpenAPIPath string
	// RequestTimeout is request_settings.request_timeout_ms, counted from
	// admission (queue time included); zero means DefaultRequestTimeout (5 s).
	RequestTimeout time.Duration
	// MaxConcurrentPerInstance is request_settings.max_concurrent_requests_per_instance (>= 1);
	// zero or less means 1.
	MaxConcurrentPerInstance int
	// MaxQueueWait is request_settings.max_queue_wait_ms; zero means a queued
	// request waits until its RequestTimeout.
	MaxQueueWait time.Duration
	// Instances are the ready instances only; the gateway never sends a
	// request to an instance that is not listed.
	Instances []Instance
	// Starting is how many instances were started and are not ready yet.
	// While no instance is ready, requests wait for them (within their
	// deadline) instead of a 503, and each counts toward the admission
	// bound as a ready one would.
	Starting int
	// OnDemand says an instance starts when a request comes while none
	// runs (scale_settings.min_instances 0): requests wait for it in the
	// queue, within MaxPending and their deadline, instead of a 503.
	OnDemand bool
	// MaxPending, when larger than 2 × the instances' slots, bounds the
	// requests in flight and queued instead (an autoscaled deployment
	// admits what it could hold at its largest and queues while instances
	// start). Zero means Azure's bound only.
	MaxPending int
	// ModelName and ModelVersion describe what serves, for provenance headers
	// and logs. Either may be empty.
	ModelName    string
	ModelVersion string
	// ModelDigest is the model's artifact digest ("sha256:…"), for the
	// provenance headers; "" when the deployment has no model.
	ModelDigest string
	// Capture, if set, writes a sampled share of the deployment's
	// request/response pairs to CaptureSink.
	Capture *Capture
	// Contract, if set, is checked against every scoring request's body
	// before it is queued (422 on a violation), and published at
	// /endpoints/<e>/prototype and in the generated …/swagger.json. nil
	// means requests go to the model unchecked.
	Contract *contract.Contract
}

// Instance is one ready backend. Its routes and limit come from the plan it
// was started with: during a rolling update an old instance keeps its own
// scoring path while new ones serve the new one.
type Instance struct {
	// Name is unique within the deployment, e.g. "blue-0".
	Name string
	// Addr is "host:port" (TCP) or "unix:" followed by an absolute socket
	// path.
	Addr string
	// ScoringPath is where this instance serves scoring requests; empty
	// means the deployment's ScoringPath.
	ScoringPath string
	// OpenAPIPath is where this instance serves its OpenAPI document; empty
	// means the deployment's OpenAPIPath.
	OpenAPIPath string
	// MaxConcurrent is how many requests it takes at once; zero or less
	// means the deployment's MaxConcurrentPerInstance.
	MaxConcurrent int
	// ModelName, ModelVersion and ModelDigest say what model this
	// instance serves when it differs from the deployment's (an instance
	// of the previous version during a rolling update); empty means the
	// deployment's.
	ModelName, ModelVersion, ModelDigest string
}

// Capture is a deployment's request/response capture (plumbline.capture).
type Capture struct {
	// SamplingRate is the share of requests captured, 0–1.
	SamplingRate float64
	// Redact and Hash are JSONPath expressions applied to both bodies
	// before a record leaves the gateway (see internal/redact).
	Redact, Hash []string
	// MaxBodyBytes bounds each body kept; zero means 256 KiB.
	MaxBodyBytes int
	// Files and Sink tell the CaptureSink where records go; the gateway
	// passes them along untouched.
	RollingRate  string
	MaxFileBytes int64
	MaxFiles     int
	SinkURL      string
	SinkHeaders  map[string]string
}
