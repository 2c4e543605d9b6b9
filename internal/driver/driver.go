// Package driver defines the one contract every runtime satisfies: start, stop,
// inspect, list and read the logs of a model-serving instance.
//
// The reconciler is the only consumer. Implementations live in sub-packages
// (driver/process, driver/fake; docker and kubernetes later) and are proven
// against the shared conformance suite in driver/drivertest.
//
// This package must not import the store, the registry, the gateway or the
// reconciler: a driver knows instances, not endpoints' desired state.
package driver

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// Runtime says how an instance's server process is produced.
type Runtime string

const (
	// RuntimePlumber runs an R plumber file (AML_APP_ROOT/AZUREML_ENTRY_SCRIPT)
	// under plumbline's built-in launcher, the equivalent of the seed's
	// start_plumber.R, on the port the driver assigns.
	RuntimePlumber Runtime = "plumber"
	// RuntimeGeneric runs InstanceSpec.Command, any HTTP server that takes its
	// port from the PORT environment variable or a {port} placeholder.
	RuntimeGeneric Runtime = "generic"
	// RuntimeImage runs InstanceSpec.Image as a container (docker, kubernetes).
	RuntimeImage Runtime = "image"
)

// InstanceSpec is everything a driver needs to start one instance. The
// reconciler fills it; drivers must treat it as read-only.
type InstanceSpec struct {
	// ID is unique across the server and deterministic:
	// "<endpoint>.<deployment>.<instance>", e.g. "iris.blue.blue-0".
	ID         string
	Endpoint   string
	Deployment string
	Instance   string

	Runtime Runtime

	// ModelDir is a host folder holding the model's files, read-only, with the
	// registered path's basename kept (ModelDir/models/crate.bin). It becomes
	// AZUREML_MODEL_DIR. Empty when the deployment has no model.
	ModelDir string
	// CodeDir is the host folder that holds the scoring script (AML_APP_ROOT).
	// Empty when the deployment has no code_configuration.
	CodeDir string
	// EntryScript is the scoring script's path relative to CodeDir
	// (AZUREML_ENTRY_SCRIPT).
	EntryScript string
	// Command is the argv for RuntimeGeneric. The literal "{port}" in any
	// argument is replaced by the assigned port; "{model_dir}" and "{code_dir}"
	// by ModelDir and CodeDir.
	Command []string
	// Image is the container image for RuntimeImage.
	Image string
	// Port is the inference_config port the server listens on inside a
	// container. Drivers that cannot give each instance its own network
	// namespace (process) assign a free port instead.
	Port int
	// Env is the user's environment_variables. It is applied after the
	// AZUREML_* variables, so user values win, as on Azure's local endpoints.
	Env map[string]string

	// CPU is a limit in cores (0: none); MemoryBytes a limit in bytes (0: none).
	CPU         float64
	MemoryBytes int64

	// Template is the versioned hash of what the instance runs, computed by
	// the reconciler (e.g. "t1:3f2a…"). The driver stores it with the
	// instance (process: its record; docker: the label plumbline.template)
	// and reports it back in Status.Template from Start, Inspect, List and
	// Recover, so that after a restart the reconciler keeps only instances
	// that still run the desired plan. Drivers treat it as opaque.
	Template string

	// ModelName and ModelVersion name the model mounted from ModelDir;
	// container drivers mount it at <ModelMountPath>/<name>/<version>, as
	// Azure does. Empty when the deployment has no model.
	ModelName    string
	ModelVersion string
	// ModelMountPath is the deployment's model_mount_path; "" means Azure's
	// default, /var/azureml-app/azureml-models. Container drivers only.
	ModelMountPath string

	// RWorkers, on a RuntimePlumber instance, runs it on plumbline's lean
	// R runtime (package rworker) instead of plumber's own server; nil
	// means plumber's own server. Drivers that cannot run the lean runtime
	// (containers built from the user's image) ignore it.
	RWorkers *RWorkers
}

// RWorkers are the lean R runtime's settings for one instance.
type RWorkers struct {
	// Workers is the number of R workers forked from the loaded session
	// (≥ 1).
	Workers int
	// MaxRequests replaces a worker after this many requests; 0: never.
	MaxRequests int
	// MaxMemoryBytes replaces a worker past this resident size; 0: twice
	// the loaded session's plus 1 GiB.
	MaxMemoryBytes int64
	// RequestTimeout bounds a request: past it the worker is killed and
	// forked again. 0: 5 s.
	RequestTimeout time.Duration
	// LivenessPath and ReadinessPath are the probe routes the instance
	// answers from its workers' state (after the user's own passed once at
	// start-up).
	LivenessPath  string
	ReadinessPath string
}

// State is an instance's lifecycle state as the driver sees it.
type State string

const (
	StateStarting State = "Starting" // process or container created, not known to be serving
	StateRunning  State = "Running"  // alive; readiness is the reconciler's business
	StateExited   State = "Exited"   // ended; ExitCode says how
	StateUnknown  State = "Unknown"
)

// Status is one instance as the driver sees it now.
type Status struct {
	ID    string
	State State
	// Addr is where the instance's routes answer (probe and scoring
	// target), set once the instance has started: "host:port" for TCP, or
	// "unix:" followed by an absolute path for a unix socket
	// ("unix:/var/lib/plumbline/instances/x/sock"). SplitAddr parses it.
	Addr string
	// Template is the InstanceSpec.Template the instance was started with.
	Template  string
	PID       int
	StartedAt time.Time
	// ExitCode is meaningful when State is StateExited; -1 when killed by a
	// signal (Message says which).
	ExitCode int
	ExitedAt time.Time
	Message  string
}

// LogOptions selects what Logs returns.
type LogOptions struct {
	// Tail is the number of lines from the end; 0 means all.
	Tail int
	// Follow keeps the reader open and streams new lines until ctx ends or
	// the instance is removed.
	Follow bool
}

// Driver runs instances. All methods are safe for concurrent use and honour
// ctx for cancellation.
type Driver interface {
	// Name is "process", "docker", "kubernetes" or "fake".
	Name() string
	// Start creates and starts the instance and returns its status once the
	// server process exists (it need not be serving yet). Starting an ID
	// that already exists is an error wrapping ErrExists.
	Start(ctx context.Context, spec InstanceSpec) (Status, error)
	// Stop asks the instance to end (SIGTERM or equivalent), waits up to
	// grace, then kills it and everything it started, and forgets it. Stopping
	// an unknown ID returns an error wrapping ErrNotFound.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Inspect reports the instance's current status; ErrNotFound if unknown.
	// An exited instance stays inspectable (with its exit code) until Stop.
	Inspect(ctx context.Context, id string) (Status, error)
	// List reports every instance this driver currently knows.
	List(ctx context.Context) ([]Status, error)
	// Logs returns the instance's combined stdout and stderr. They stay
	// readable while the instance is known, exited included; Stop discards
	// them, so read what you keep (a crash's last lines) before Stop.
	// ErrNotFound if unknown.
	Logs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error)
	// Recover is called once at server start, before any Start. It finds
	// what a previous run of plumbline left behind (after a graceful stop, a
	// crash or kill -9) and re-adopts every instance that is still alive and
	// provably the one recorded (process: pid, process start time and boot
	// id; docker: the container labels and this server's owner id). It
	// returns them (ID, Template, Addr, PID, StartedAt at least); from then
	// on they are this driver's like the ones it started: Inspect, List,
	// Logs and Stop work on them. Leftovers that are dead (or cannot be
	// proved to be the recorded instance) it removes itself, so no orphan
	// process and no port stays taken. The caller keeps the re-adopted
	// instances whose Template matches what it wants and Stops the rest.
	Recover(ctx context.Context) ([]Status, error)
}

// UnixAddrPrefix marks a Status.Addr that is a unix socket path.
const UnixAddrPrefix = "unix:"

// SplitAddr returns the network ("tcp" or "unix") and the address to dial
// for an instance address: "unix:/abs/path" is ("unix", "/abs/path"),
// anything else ("host:port") is ("tcp", addr).
func SplitAddr(addr string) (network, address string) {
	if p, ok := strings.CutPrefix(addr, UnixAddrPrefix); ok {
		return "unix", p
	}
	return "tcp", addr
}

var (
	// ErrNotFound: the driver has no instance with that ID.
	ErrNotFound = errors.New("instance not found")
	// ErrExists: an instance with that ID already exists.
	ErrExists = errors.New("instance already exists")
)

// StartError is a failure to start that the user must fix (a missing
// executable, a bad command line). The reconciler treats it as terminal
// rather than retrying.
type StartError struct {
	ID     string
	Reason string
	Err    error
}

func (e *StartError) Error() string {
	if e.Err != nil {
		return "start instance " + e.ID + ": " + e.Reason + ": " + e.Err.Error()
	}
	return "start instance " + e.ID + ": " + e.Reason
}

func (e *StartError) Unwrap() error { return e.Err }
