package driver

import (
	"context"
	"time"
)

// DeploymentDriver is the extension a driver implements when its platform
// runs a whole deployment itself (Kubernetes): the replicas, their probes,
// their restarts and the rolling replacement of old by new. plumbline then
// declares the deployment and observes it, instead of starting and probing
// each instance: readiness and instance addresses come from the platform.
//
// It is additive: the reconciler uses it when the driver has it
// (type-assert the Driver), and the instance methods of Driver keep
// working for the platform's instances (Inspect, List and Logs by
// instance ID; Stop replaces one).
type DeploymentDriver interface {
	// ApplyDeployment creates the deployment or updates it to spec and
	// returns without waiting for it to roll out. Applying the same spec
	// again changes nothing. A spec the platform refuses is a *StartError.
	ApplyDeployment(ctx context.Context, spec DeploymentSpec) error
	// ObserveDeployment reports the deployment as the platform sees it now;
	// ErrNotFound when it does not exist.
	ObserveDeployment(ctx context.Context, endpoint, deployment string) (DeploymentStatus, error)
	// DeleteDeployment removes the deployment and everything made for it;
	// deleting one that does not exist is not an error.
	DeleteDeployment(ctx context.Context, endpoint, deployment string) error
}

// Artifact is content of the control plane's registry, named by digest. A
// driver whose instances cannot see the server's disk has them fetch it
// (plumbline fetch) instead of mounting a host folder.
type Artifact struct {
	// Digest is the artifact's "sha256:<hex>".
	Digest string
	// Path is the basename kept beneath the mount ("models" for a model
	// registered with --path ./models; the code folder's name for code).
	Path string
}

// Probe is one of inference_config's probes with Azure's settings.
type Probe struct {
	Path             string
	Port             int
	InitialDelay     time.Duration
	Period           time.Duration
	Timeout          time.Duration
	SuccessThreshold int
	FailureThreshold int
}

// DeploymentSpec is a whole deployment for a DeploymentDriver.
type DeploymentSpec struct {
	Endpoint   string
	Deployment string
	// Template is what every replica runs: Runtime, Image, Command, Port,
	// Env, EntryScript, ModelName, ModelVersion, ModelMountPath, CPU and
	// MemoryBytes (limits), and Template (the versioned hash of all this).
	// Its ID, Instance, ModelDir and CodeDir are not used: Model and Code
	// say what to fetch.
	Template InstanceSpec
	// Model and Code are the artifacts the replicas need; nil when the
	// deployment has none.
	Model, Code *Artifact
	// Replicas is instance_count.
	Replicas int
	// Liveness and Readiness are the probes (Path "" means none).
	Liveness, Readiness Probe
	// RequestCPU (cores) and RequestMemoryBytes are the resources the
	// platform guarantees (kubernetesOnlineDeployment's
	// resources.requests); zero means none.
	RequestCPU         float64
	RequestMemoryBytes int64
	// TerminationGrace is how long a replica being removed may finish its
	// requests (request_timeout_ms and a margin); zero means 30 s.
	TerminationGrace time.Duration
}

// DeploymentState is where a deployment's rollout stands.
type DeploymentState string

const (
	// DeploymentProgressing: replicas of the current template are being
	// created or are not all ready yet.
	DeploymentProgressing DeploymentState = "Progressing"
	// DeploymentAvailable: every replica runs the current template and is
	// ready (Azure: Succeeded).
	DeploymentAvailable DeploymentState = "Available"
	// DeploymentFailed: the platform cannot run the current template
	// (Reason and Message say why and what to do).
	DeploymentFailed DeploymentState = "Failed"
)

// DeploymentStatus is a deployment as the platform sees it.
type DeploymentStatus struct {
	State DeploymentState
	// Reason is Azure's code for a failure or a wait (ImagePullLoopBackOff,
	// KubernetesCrashLoopBackOff, PodOutOfMemory, PodUnschedulable…);
	// Message is for the user: what is wrong and how to fix it.
	Reason  string
	Message string
	// Template is the template hash the platform's deployment now wants.
	Template string
	// Replicas wanted; Updated of them run Template; Ready of those are ready.
	Replicas, Updated, Ready int
	// Instances are the replicas that exist, ready or not.
	Instances []InstanceStatus
}

// InstanceStatus is one replica of a DeploymentDriver's deployment.
type InstanceStatus struct {
	// ID is the driver's instance ID (Inspect, Logs, Stop take it); Name
	// the replica's name.
	ID, Name string
	// Addr is where it answers ("host:port"), once it has an address.
	Addr string
	// Ready says the platform's readiness probe passes and it is not
	// terminating: the gateway may send it requests.
	Ready bool
	// Template is the template hash the replica runs.
	Template  string
	Restarts  int
	StartedAt time.Time
	// Message says why it is not ready, when it is not.
	Message string
}
