// Package store is plumbline's persistent state: models, endpoints,
// deployments, instances and events, behind the Store interface. SQLite
// (store/sqlite) is the embedded default; a PostgreSQL implementation will
// satisfy the same interface and pass the same conformance suite
// (store/storetest).
//
// Specs are kept as the JSON the API accepted (json.RawMessage), so this
// package does not depend on the spec package and a schema change does not
// need a migration. This package must not import the registry, drivers, the
// gateway or the API server.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
)

var (
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("not found")
	// ErrExists: a record with that key already exists.
	ErrExists = errors.New("already exists")
	// ErrConflict: the write contradicts what is stored (e.g. the same model
	// name and version with different content).
	ErrConflict = errors.New("conflict")
	// ErrNoSpace: a write failed because the disk holding the store is full
	// (SQLite's SQLITE_FULL; PostgreSQL's disk_full). Nothing was written.
	ErrNoSpace = errors.New("no space left on the store's disk")
	// ErrLeaseHeld: another holder has the lease and it has not expired.
	ErrLeaseHeld = errors.New("lease held by another holder")
	// ErrFenced: the lease token presented is no longer the current one
	// (or the lease expired): its holder must stop acting.
	ErrFenced = errors.New("lease lost")
)

// Provisioning states, as Azure names them.
const (
	StateCreating  = "Creating"
	StateUpdating  = "Updating"
	StateDeleting  = "Deleting"
	StateSucceeded = "Succeeded"
	StateFailed    = "Failed"
)

// NewEndpointID returns a new random endpoint identity (a UUID).
func NewEndpointID() string { return uuid.NewString() }

// ModelVersion is one immutable registered model version.
type ModelVersion struct {
	Name    string
	Version string // decimal when auto-assigned; any string the user gave otherwise
	// Digest is the artifact (manifest) digest, "sha256:<hex>".
	Digest      string
	Type        string // custom_model, mlflow_model, triton_model
	Description string
	Tags        map[string]string
	// PathBase is the basename of the registered path ("models" for ./models),
	// kept under AZUREML_MODEL_DIR.
	PathBase  string
	Size      int64 // total bytes of the files
	FileCount int
	Archived  bool
	CreatedAt time.Time
	// Stage is free-form (Development, Production…); "" means none. It can
	// change (see ModelUpdater), unlike the version's files.
	Stage string
	// Contract is the version's input contract (JSON of contract.Contract:
	// a prototype or a JSON Schema, from model create --prototype or
	// --input-schema); nil means none.
	Contract json.RawMessage
}

// ModelFilter selects models in ListModels.
type ModelFilter struct {
	Name            string // "" means all names
	IncludeArchived bool
	ArchivedOnly    bool
	Limit           int // 0 means no limit
}

// Endpoint is an endpoint record.
type Endpoint struct {
	Name string
	// ID is the endpoint's identity: random, given by CreateEndpoint when
	// empty, never changed. An endpoint deleted and created again under the
	// same name has another ID (aml_tokens are bound to it).
	ID string
	// TokenGeneration is incremented to revoke every aml_token issued for
	// the endpoint (tokens are bound to it); zero at creation.
	TokenGeneration int64
	// Spec is the endpoint document as JSON (spec.Endpoint), defaults applied.
	Spec         json.RawMessage
	AuthMode     string
	PrimaryKey   string
	SecondaryKey string
	Traffic      map[string]int
	Mirror       map[string]int
	State        string
	Reason       string
	// Generation increases on every change of the desired state.
	Generation int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Deployment is a deployment record.
type Deployment struct {
	Endpoint string
	Name     string
	// Spec is the resolved deployment (JSON): model pinned to name:version and
	// digest, code and environment pinned to artifact digests.
	Spec   json.RawMessage
	State  string
	Reason string
	// Generation increases on every change of Spec; the reconciler records the
	// generation it has fully applied in ObservedGeneration.
	Generation         int64
	ObservedGeneration int64
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// Instance states, as Instance.State names them.
const (
	InstanceStarting = "Starting" // started, never ready yet
	InstanceReady    = "Ready"
	InstanceUnready  = "Unready"  // was ready, its readiness probe fails now
	InstanceStopping = "Stopping" // out of routing, being drained and stopped
	InstanceParked   = "Parked"   // scaled to zero, its loaded session kept with no worker (lean R runtime)
	InstanceExited   = "Exited"
)

// Instance is the observed state of one running instance, written by the
// reconciler that runs it and read by every gateway (the routing table is
// built from these rows) and by a reconciler that takes over.
type Instance struct {
	Endpoint   string
	Deployment string
	Name       string // "blue-0"
	Driver     string
	// ID is the driver's instance ID ("iris.blue.blue-0").
	ID string
	// Addr is where it answers: "host:port" (TCP) or "unix:/abs/path".
	Addr string
	// Template is the versioned template hash of what it runs.
	Template string
	// State is one of the Instance* states; "" for a record without one.
	State string
	// Routable says the gateways may send it requests: ready and not
	// stopping.
	Routable bool
	// ScoringPath and OpenAPIPath are the routes of the plan it was started
	// with: during a rolling update an old instance keeps its own.
	ScoringPath string
	OpenAPIPath string
	// MaxConcurrent is max_concurrent_requests_per_instance of that plan
	// (0: the deployment's).
	MaxConcurrent int
	// Restarts counts restarts under this name.
	Restarts int
	// LastProbe is the last probe failure ("" when the last probe passed);
	// LastProbeAt when the probe result last changed.
	LastProbe   string
	LastProbeAt time.Time
	PID         int
	StartedAt   time.Time
	// Data is driver- or reconciler-specific JSON.
	Data      json.RawMessage
	CreatedAt time.Time
	UpdatedAt time.Time
}

// GatewayReport is what one gateway replica last said about the instances
// it may still send requests to: every instance of its routing table and
// every instance with requests in flight, keyed "endpoint/deployment/name",
// with the number in flight. A reconciler stops an instance only once no
// fresh report names it (or a bounded grace passed).
type GatewayReport struct {
	ID        string
	Addr      string
	Instances map[string]int
	// Demand is the gateway's load per deployment, keyed
	// "endpoint/deployment" (lower-case): the autoscaler sums it over the
	// gateways. nil means none (a gateway that predates it).
	Demand    map[string]Demand
	UpdatedAt time.Time
}

// Lease is a named lease held by Holder until ExpiresAt. Token increases
// by one every time the lease changes holder (or is taken after it
// expired), so a holder that lost it can be told from the current one.
type Lease struct {
	Name      string
	Holder    string
	Token     int64
	ExpiresAt time.Time
}

// Event is one lifecycle event of a deployment or instance.
type Event struct {
	ID         int64 // assigned by the store, increasing
	Time       time.Time
	Endpoint   string
	Deployment string // "" for endpoint-level events
	Instance   string // "" for deployment-level events
	// Type is "Normal" or "Warning".
	Type string
	// Reason is a short CamelCase word: Created, Started, Ready, ProbeFailed,
	// Restarted, Exited, Scaled, Deleted, ImageIgnored, PackageWarning, …
	Reason  string
	Message string
}

// EventFilter selects events; zero fields match everything.
type EventFilter struct {
	Endpoint   string
	Deployment string
	Instance   string
	AfterID    int64 // only events with ID > AfterID
	// Limit bounds the answer; 0 = no limit. Without AfterID it keeps the
	// newest Limit events; with AfterID the oldest Limit after it (paging
	// forward loses nothing). Either way events come oldest first.
	Limit int
}

// Store is plumbline's persistent state. Implementations must be safe for
// concurrent use. Mutations run in one transaction each.
//
// Rules every implementation follows (store/storetest checks them):
//   - Times are returned in UTC, kept to the microsecond at least. A zero
//     CreatedAt (UpdatedAt, Event.Time) on create is set to now; UpdatedAt
//     is set to now by every update.
//   - Spec and Data may come back as equivalent rather than byte-identical
//     JSON (an empty one comes back nil); nil and empty maps are equivalent.
//   - A create with a zero Generation stores 1; an endpoint created with an
//     empty ID is given a new random one (NewEndpointID). An update whose fn
//     changes the desired state (endpoint: Spec, AuthMode, keys, Traffic,
//     Mirror, TokenGeneration; deployment: Spec) and leaves Generation alone
//     increments it; State, Reason and ObservedGeneration are status and do
//     not. Key fields (names, an endpoint's ID) and CreatedAt cannot be
//     changed by fn.
//   - fn runs inside the write transaction: it must not call the Store.
//   - Lists are ordered: models by name then newest first; endpoints by
//     name; deployments by endpoint, name; instances by endpoint, deployment,
//     name; events by ID.
type Store interface {
	// CreateModelVersion stores m. An empty m.Version is assigned the next
	// integer (1 + the greatest integer version of that name). If name and
	// version exist with the same Digest it is a no-op returning the stored
	// record; with another Digest it fails with ErrConflict.
	CreateModelVersion(ctx context.Context, m ModelVersion) (ModelVersion, error)
	GetModelVersion(ctx context.Context, name, version string) (ModelVersion, error)
	// LatestModelVersion is the most recently created version that is not
	// archived; ErrNotFound when there is none.
	LatestModelVersion(ctx context.Context, name string) (ModelVersion, error)
	ListModels(ctx context.Context, f ModelFilter) ([]ModelVersion, error)
	// SetModelArchived archives (or restores) one version, or every version of
	// the name when version is "". ErrNotFound when nothing matches.
	SetModelArchived(ctx context.Context, name, version string, archived bool) error

	// Environments are registered environment versions (environments.go).
	Environments

	// Scales are autoscaled deployments' scaling states (scales.go).
	Scales
	// Rollouts are progressive rollouts, the traffic history, gateway
	// figures and diff samples (rollouts.go).
	Rollouts

	// CreateEndpoint fails with ErrExists if the name is taken.
	CreateEndpoint(ctx context.Context, e Endpoint) (Endpoint, error)
	GetEndpoint(ctx context.Context, name string) (Endpoint, error)
	ListEndpoints(ctx context.Context) ([]Endpoint, error)
	// UpdateEndpoint reads the endpoint, calls fn on it and writes the result,
	// all in one transaction; fn's error aborts and is returned unwrapped.
	UpdateEndpoint(ctx context.Context, name string, fn func(*Endpoint) error) (Endpoint, error)
	// UpdateEndpointWithDeployments is UpdateEndpoint whose fn also sees the
	// endpoint's deployments (by name), read in the same transaction after
	// the endpoint is locked: a check of fn against them (traffic only to
	// deployments that exist and are not being deleted) cannot be undone by
	// a concurrent UpdateDeploymentWithEndpoint. fn must not change them.
	UpdateEndpointWithDeployments(ctx context.Context, name string, fn func(*Endpoint, []Deployment) error) (Endpoint, error)
	// DeleteEndpoint removes the endpoint and, with it, its deployments,
	// instances and events.
	DeleteEndpoint(ctx context.Context, name string) error

	// CreateDeployment fails with ErrExists if taken, ErrNotFound if the
	// endpoint does not exist.
	CreateDeployment(ctx context.Context, d Deployment) (Deployment, error)
	GetDeployment(ctx context.Context, endpoint, name string) (Deployment, error)
	// ListDeployments lists one endpoint's deployments, or all when endpoint is "".
	ListDeployments(ctx context.Context, endpoint string) ([]Deployment, error)
	UpdateDeployment(ctx context.Context, endpoint, name string, fn func(*Deployment) error) (Deployment, error)
	// UpdateDeploymentWithEndpoint is UpdateDeployment whose fn also sees
	// the deployment's endpoint, read and locked in the same transaction
	// before the deployment (the lock order of
	// UpdateEndpointWithDeployments): a check of fn against the endpoint
	// (no traffic to a deployment being deleted) cannot be undone by a
	// concurrent UpdateEndpointWithDeployments. fn must not change the
	// endpoint. ErrNotFound when either is missing.
	UpdateDeploymentWithEndpoint(ctx context.Context, endpoint, name string, fn func(*Endpoint, *Deployment) error) (Deployment, error)
	// DeleteDeployment removes the deployment and its instances; its events
	// stay until the endpoint is deleted.
	DeleteDeployment(ctx context.Context, endpoint, name string) error

	// PutInstance creates or replaces an instance record (a replace keeps
	// CreatedAt). ErrNotFound if the deployment does not exist.
	PutInstance(ctx context.Context, in Instance) error
	// ListInstances lists one deployment's instances ("" lists all).
	ListInstances(ctx context.Context, endpoint, deployment string) ([]Instance, error)
	DeleteInstance(ctx context.Context, endpoint, deployment, name string) error

	// AppendEvent stores ev and returns it with ID and (if zero) Time set.
	// ErrNotFound if ev.Endpoint does not exist.
	AppendEvent(ctx context.Context, ev Event) (Event, error)
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)

	// GetSetting and PutSetting keep small server-wide values (e.g. the
	// token signing key). GetSetting returns ErrNotFound when unset.
	GetSetting(ctx context.Context, key string) ([]byte, error)
	PutSetting(ctx context.Context, key string, value []byte) error

	// RoutingVersion is a counter that increases with every committed
	// change of endpoints, deployments or instances: what gateways route
	// from.
	RoutingVersion(ctx context.Context) (int64, error)
	// WaitRoutingChange returns the routing version once it is greater
	// than after, or ctx's error when ctx ends first. A change committed by
	// any process is seen within a second (SQLite: at once in this
	// process; PostgreSQL: LISTEN/NOTIFY).
	WaitRoutingChange(ctx context.Context, after int64) (int64, error)

	// PutGatewayReport creates or replaces the report of gateway r.ID
	// (UpdatedAt becomes now); DeleteGatewayReport removes it (ErrNotFound
	// if absent); ListGatewayReports lists reports updated at or after
	// since, by ID.
	PutGatewayReport(ctx context.Context, r GatewayReport) error
	ListGatewayReports(ctx context.Context, since time.Time) ([]GatewayReport, error)
	DeleteGatewayReport(ctx context.Context, id string) error

	// AcquireLease takes the lease name for holder until now + ttl, or
	// renews it when holder has it. It fails with ErrLeaseHeld (the
	// current lease is returned too) while another holder's lease has not
	// expired. Taking it from another holder, or after it expired,
	// increments Token.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error)
	// CheckLease returns nil when l is still the current, unexpired lease
	// (same holder and token), else ErrFenced.
	CheckLease(ctx context.Context, l Lease) error
	// ReleaseLease gives the lease up when l is current (it expires now,
	// keeping its token); otherwise it does nothing.
	ReleaseLease(ctx context.Context, l Lease) error

	Close() error
}
