// Package resolve turns a validated deployment document into a Plan: the
// exact, pinned, runnable description of what a deployment's instances are —
// model version and digest, code snapshot, runtime, routes, limits, probes.
//
// The API server resolves at create/update time and stores the Plan next to
// the document; the reconciler runs Plans and never looks at YAML. Because
// every input is pinned by digest, re-running a Plan (after a restart, for a
// rollback) starts exactly the same thing.
//
// This package may import spec, store, registry, driver and plumber; it must
// not import the gateway, the reconciler or the API server.
package resolve

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/plumbline/plumbline/internal/contract"
	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/spec"
)

// Route is an inference_config route.
type Route struct {
	Port int    `json:"port"`
	Path string `json:"path"`
}

// Probe is a probe's effective settings.
type Probe struct {
	// InitialDelay before the first probe. For readiness, zero means "probe
	// at once and every StartupPeriod until first ready" (plumbline's local
	// default when the YAML is silent; see docs/runtime.md).
	InitialDelay     time.Duration `json:"initial_delay"`
	Period           time.Duration `json:"period"`
	Timeout          time.Duration `json:"timeout"`
	SuccessThreshold int           `json:"success_threshold"`
	FailureThreshold int           `json:"failure_threshold"`
}

// Plan is a resolved deployment.
type Plan struct {
	Endpoint   string `json:"endpoint"`
	Deployment string `json:"deployment"`

	Runtime driver.Runtime `json:"runtime"`

	// Model, when the deployment has one.
	ModelName    string `json:"model_name,omitempty"`
	ModelVersion string `json:"model_version,omitempty"`
	ModelDigest  string `json:"model_digest,omitempty"`
	// ModelPath is the registered path's basename, kept under
	// AZUREML_MODEL_DIR ("models" → $AZUREML_MODEL_DIR/models/crate.bin).
	ModelPath string `json:"model_path,omitempty"`

	// CodeDigest is the code snapshot; CodeRoot its top-level folder name
	// ("src"), which becomes AML_APP_ROOT once materialized.
	CodeDigest  string `json:"code_digest,omitempty"`
	CodeRoot    string `json:"code_root,omitempty"`
	EntryScript string `json:"entry_script,omitempty"`

	// BuildDigest is the environment's build context snapshot, if any, and
	// Dockerfile the Dockerfile's path inside it ("docker-context/Dockerfile").
	BuildDigest string `json:"build_digest,omitempty"`
	Dockerfile  string `json:"dockerfile,omitempty"`

	// EnvironmentName and EnvironmentVersion name the registered
	// environment the deployment uses ("" for an inline one).
	EnvironmentName    string `json:"environment_name,omitempty"`
	EnvironmentVersion string `json:"environment_version,omitempty"`
	// ModelMountPath is model_mount_path ("" means Azure's default); it
	// matters to container drivers only.
	ModelMountPath string `json:"model_mount_path,omitempty"`

	Image   string            `json:"image,omitempty"`
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`

	Liveness  Route `json:"liveness_route"`
	Readiness Route `json:"readiness_route"`
	Scoring   Route `json:"scoring_route"`
	// OpenAPIPath is where instances serve their OpenAPI document ("" if
	// unknown).
	OpenAPIPath string `json:"openapi_path,omitempty"`

	InstanceCount int `json:"instance_count"`

	RequestTimeout           time.Duration `json:"request_timeout"`
	MaxConcurrentPerInstance int           `json:"max_concurrent_requests_per_instance"`
	MaxQueueWait             time.Duration `json:"max_queue_wait"`

	LivenessProbe  Probe `json:"liveness_probe"`
	ReadinessProbe Probe `json:"readiness_probe"`

	CPU         float64 `json:"cpu,omitempty"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`

	// Scorer, when set, is the built-in scorer of a no-code deployment.
	Scorer *ScorerPlan `json:"scorer,omitempty"`
	// Contract, when set, is checked by the gateway against every request
	// (not part of the template: changing it restarts nothing).
	Contract *contract.Contract `json:"contract,omitempty"`
	// RRuntime is how an R plumber deployment's R runs: spec.RRuntimeLean
	// (plumbline's lean R runtime) or spec.RRuntimePlumber (plumber's own
	// server); "" (plans stored before the lean runtime) means plumber's own.
	RRuntime string `json:"r_runtime,omitempty"`
	// Workers, MaxRequestsPerWorker and MaxWorkerMemoryBytes are the lean
	// runtime's settings (see driver.RWorkers); zero when RRuntime is not
	// lean.
	Workers              int   `json:"workers,omitempty"`
	MaxRequestsPerWorker int   `json:"max_requests_per_worker,omitempty"`
	MaxWorkerMemoryBytes int64 `json:"max_worker_memory_bytes,omitempty"`
	// SampleRequest, when set, is the body each new instance must answer
	// with a 2xx before it joins the pool (plumbline.sample_request; not
	// part of the template).
	SampleRequest json.RawMessage `json:"sample_request,omitempty"`
}

// Lean reports whether the plan runs on the lean R runtime.
func (p *Plan) Lean() bool {
	return p.Runtime == driver.RuntimePlumber && p.RRuntime == spec.RRuntimeLean
}

// RWorkers is what the driver needs to run the plan's instances on the lean
// R runtime; nil when the plan does not use it.
func (p *Plan) RWorkers() *driver.RWorkers {
	if !p.Lean() {
		return nil
	}
	return &driver.RWorkers{
		Workers: p.Workers, MaxRequests: p.MaxRequestsPerWorker, MaxMemoryBytes: p.MaxWorkerMemoryBytes,
		RequestTimeout: p.RequestTimeout, LivenessPath: p.Liveness.Path, ReadinessPath: p.Readiness.Path,
	}
}

// TemplateHash identifies what an instance runs. Two instances with the same
// hash are interchangeable; a changed hash means a rolling replacement.
// Scale (InstanceCount), request settings and probes are not part of it:
// changing them never restarts an instance. The one exception is the lean R
// runtime, whose instances are started with their workers and request
// timeout: for lean plans these are part of the hash (hashed only when set,
// so plans without the lean runtime keep their hash).
//
// The hash is versioned ("t1:<hex>"): the fields hashed by t1 never change.
// A later version that hashes a new field gets a new prefix, and an
// instance started under t1 still matches a plan whose t1 hash is equal
// (see TemplateMatches), so an upgrade of plumbline restarts nothing.
func (p *Plan) TemplateHash() string { return templateV1Prefix + p.templateV1() }

const templateV1Prefix = "t1:"

// TemplateMatches reports whether an instance started with template hash h
// runs what p describes, under the version h was computed with. An
// unversioned or unknown version never matches (the instance is replaced).
func (p *Plan) TemplateMatches(h string) bool {
	if v, ok := strings.CutPrefix(h, templateV1Prefix); ok {
		return v == p.templateV1()
	}
	return false
}

func (p *Plan) templateV1() string {
	type leanPart struct {
		RRuntime             string
		Workers              int
		MaxRequestsPerWorker int
		MaxWorkerMemoryBytes int64
		RequestTimeout       time.Duration
	}
	var lean *leanPart
	if p.RRuntime != "" {
		lean = &leanPart{RRuntime: p.RRuntime}
		if p.Lean() {
			lean.Workers, lean.MaxRequestsPerWorker, lean.MaxWorkerMemoryBytes = p.Workers, p.MaxRequestsPerWorker, p.MaxWorkerMemoryBytes
			lean.RequestTimeout = p.RequestTimeout
		}
	}
	t := struct {
		Runtime     driver.Runtime
		ModelDigest string
		ModelPath   string
		CodeDigest  string
		CodeRoot    string
		EntryScript string
		Image       string
		Command     []string
		Env         [][2]string
		Routes      [3]Route
		CPU         float64
		MemoryBytes int64
		// Added later: omitted when empty, so that older plans keep their hash.
		ModelMountPath string    `json:",omitempty"`
		ModelName      string    `json:",omitempty"`
		ModelVersion   string    `json:",omitempty"`
		Lean           *leanPart `json:",omitempty"`
	}{
		p.Runtime, p.ModelDigest, p.ModelPath, p.CodeDigest, p.CodeRoot, p.EntryScript,
		p.Image, p.Command, sortedPairs(p.Env), [3]Route{p.Liveness, p.Readiness, p.Scoring},
		p.CPU, p.MemoryBytes, p.ModelMountPath, "", "", lean,
	}
	if p.Runtime == driver.RuntimeImage {
		// A container sees the model at .../<name>/<version>.
		t.ModelName, t.ModelVersion = p.ModelName, p.ModelVersion
	}
	b, _ := json.Marshal(t)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

func sortedPairs(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// Record is what the API server stores as store.Deployment.Spec: the
// deployment document as the user gave it (references pinned, no defaults
// filled in) and the Plan derived from it.
type Record struct {
	Document json.RawMessage `json:"document"`
	Plan     *Plan           `json:"plan"`
	// Notices are messages for the user produced while resolving (ignored
	// fields, warnings); the API server also records them as events.
	Notices []string `json:"notices,omitempty"`
	// Previous is the last version that succeeded, kept while an update is
	// in progress or has failed, so that its instances keep serving (and
	// come back after a restart) until the new version succeeds. Nil on a
	// first creation; never nested.
	Previous *Record `json:"previous,omitempty"`
	// Generation is the deployment generation (version) this record was
	// stored as; 0 when not recorded (records stored before it was).
	Generation int64 `json:"generation,omitempty"`
}

// WithPrevious returns the record to store for an update of a deployment
// whose stored record is cur in state curState: it carries the last version
// that succeeded.
func (rec *Record) WithPrevious(cur *Record, curSucceeded bool) *Record {
	out := *rec
	switch {
	case cur == nil:
	case curSucceeded:
		out.Previous = &Record{Document: cur.Document, Plan: cur.Plan, Generation: cur.Generation}
	default:
		out.Previous = cur.Previous // still the last that succeeded
	}
	return &out
}

// DecodeRecord reads a stored record.
func DecodeRecord(b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
