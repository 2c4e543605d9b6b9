package store

import (
	"context"
	"time"
)

// Demand is what one gateway saw of one deployment's load, the
// autoscaler's input. Arrivals and Busy are cumulative since Since, so a
// report that is read late or missed loses nothing: the autoscaler takes
// differences between two reports of the same gateway.
type Demand struct {
	// InFlight requests are at an instance; Queued ones wait for a slot
	// (or for a first instance to start).
	InFlight int `json:"inflight"`
	Queued   int `json:"queued"`
	// Ready is how many instances this gateway dispatches to.
	Ready int `json:"ready"`
	// Arrivals counts the requests admitted since Since.
	Arrivals int64 `json:"arrivals"`
	// Busy is the time integral of InFlight + Queued since Since, in
	// request-seconds: its growth over an interval divided by the
	// interval's length is the average concurrency.
	Busy float64 `json:"busy"`
	// Since is when the counters started from zero (the gateway began
	// serving the deployment); a different Since means they restarted.
	Since time.Time `json:"since"`
	// At is when the gateway read the counters, on its clock (zero: use
	// the report's UpdatedAt).
	At time.Time `json:"at,omitzero"`
}

// Scale is the scaling state of one autoscaled deployment: what the
// autoscaler on the leader decided, and the pre-warm floor the API asked
// for. It lives as long as the deployment.
type Scale struct {
	Endpoint   string
	Deployment string
	// Desired is the instance count last decided; DecidedAt is zero until
	// the autoscaler decided once.
	Desired   int
	DecidedAt time.Time
	// Decision says why, e.g. "scaled 2 → 3: utilization 92 % > 70 %".
	Decision string
	// Panic is true while the autoscaler is in panic mode (a burst above
	// the panic threshold: it scales out, never in).
	Panic bool
	// Utilization is the observed concurrency per ready instance as a
	// percentage of max_concurrent_requests_per_instance, at the last
	// evaluation.
	Utilization float64
	// PrewarmInstances is a floor a pre-warm asked for, until
	// PrewarmUntil (zero: no pre-warm).
	PrewarmInstances int
	PrewarmUntil     time.Time
	UpdatedAt        time.Time
}

// Scales is the autoscaler's part of the Store.
type Scales interface {
	// GetScale returns a deployment's scaling state; ErrNotFound when the
	// autoscaler never wrote it (or the deployment does not exist).
	GetScale(ctx context.Context, endpoint, deployment string) (Scale, error)
	// ListScales lists every deployment's scaling state, by endpoint and
	// deployment.
	ListScales(ctx context.Context) ([]Scale, error)
	// UpdateScale reads a deployment's scaling state (zero fields but the
	// names when it has none yet), calls fn on it and writes the result,
	// in one transaction; fn's error aborts and is returned unwrapped.
	// ErrNotFound when the deployment does not exist. UpdatedAt becomes
	// now. Deleting the deployment deletes its scaling state.
	UpdateScale(ctx context.Context, endpoint, deployment string, fn func(*Scale) error) (Scale, error)
}
