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
	// ModelName and ModelVersion describe what serves, for provenance headers
	// and logs. Either may be empty.
	ModelName    string
	ModelVersion string
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
}
