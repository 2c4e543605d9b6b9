package spec

import (
	"go.yaml.in/yaml/v3"
)

// Deployment types (type:).
const (
	DeploymentManaged    = "managed"
	DeploymentKubernetes = "kubernetes"
)

// Scale settings types (scale_settings.type).
const (
	ScaleDefault           = "default"
	ScaleTargetUtilization = "target_utilization"
)

// Azure's defaults and limits for deployments.
const (
	DefaultRequestTimeoutMs            = 5000
	DefaultMaxConcurrentRequests       = 1
	DefaultMaxQueueWaitMs              = 500
	DefaultProbeInitialDelay           = 10 // seconds
	DefaultProbePeriod                 = 10 // seconds
	DefaultProbeTimeout                = 2  // seconds
	DefaultProbeSuccessThreshold       = 1
	DefaultProbeFailureThreshold       = 30
	DefaultMinInstances                = 1
	DefaultMaxInstances                = 1
	DefaultTargetUtilizationPercentage = 70
	DefaultPollingInterval             = 1 // seconds

	// Autoscaler defaults (plumbline.autoscale, plumbline's extension).
	DefaultStableWindow             = 60  // seconds, as Knative's KPA
	DefaultPanicThresholdPercentage = 200 // of the target, as Knative's KPA
	DefaultScaleDownDelayPolls      = 20  // polling intervals: Azure scales in "around 20 times" slower than out
	DefaultScaleToZeroAfter         = 300 // seconds without a request before min_instances 0 stops the last instance
	DefaultKeepLoadedFor            = 600 // seconds a lean R instance scaled to zero keeps its loaded session
	MaxAutoscaleWindow              = 3600

	MaxInstanceCountManaged       = 50
	MaxRequestTimeoutMsManaged    = 180000
	MaxRequestTimeoutMsKubernetes = 300000
)

// Deployment is Azure's managedOnlineDeployment / kubernetesOnlineDeployment
// YAML.
type Deployment struct {
	// Schema is the $schema URL; "" is fine. A kubernetesOnlineDeployment
	// schema makes the deployment a Kubernetes one.
	Schema string `json:"$schema,omitempty"`
	// Name is required: 3–32 characters, a letter first, then letters,
	// digits and '-'.
	Name string `json:"name"`
	// EndpointName is required (the CLI's --endpoint-name sets it).
	EndpointName string `json:"endpoint_name"`
	// Description is free text; "" means none.
	Description string `json:"description,omitempty"`
	// Tags are free-form; nil means none.
	Tags map[string]string `json:"tags,omitempty"`
	// Properties are free-form; nil means none.
	Properties map[string]string `json:"properties,omitempty"`
	// Type is managed or kubernetes; "" means kubernetes when $schema says
	// so, else managed.
	Type string `json:"type,omitempty"`
	// Model is the model to mount; nil means none (a custom container may
	// carry its own).
	Model *ModelRef `json:"model,omitempty"`
	// ModelMountPath is an absolute path the model is mounted under
	// (<path>/<model-name>/<version>); "" means the default,
	// /var/azureml-app/azureml-models.
	ModelMountPath string `json:"model_mount_path,omitempty"`
	// CodeConfiguration is the scoring code; nil means none.
	CodeConfiguration *CodeConfiguration `json:"code_configuration,omitempty"`
	// Environment is a reference or an inline environment. It is required
	// unless the model is served without one (a no-code deployment): an
	// mlflow_model or triton_model (inline type, or a registered model
	// whose type says so), or plumbline.scorer builtin. nil means none.
	Environment *EnvironmentRef `json:"environment,omitempty"`
	// EnvironmentVariables are set in every instance (scalars are read as
	// their text); nil means none.
	EnvironmentVariables map[string]string `json:"environment_variables,omitempty"`
	// InstanceType is an Azure VM size (Standard_DS3_v2), mapped to CPU and
	// memory limits by InstanceTypeResources; required for managed
	// deployments. "" means no size (Kubernetes: the cluster default).
	InstanceType string `json:"instance_type,omitempty"`
	// InstanceCount is the number of instances, 1–50 for managed; required
	// for deployments with scale_settings type default. With type
	// target_utilization it is the count to start with (within
	// min_instances–max_instances); nil means not set.
	InstanceCount *int `json:"instance_count,omitempty"`
	// AppInsightsEnabled is Azure's Application Insights switch; ignored.
	// nil means false.
	AppInsightsEnabled *bool `json:"app_insights_enabled,omitempty" spec:"ignored"`
	// ScaleSettings is how the instance count is chosen; nil means
	// {type: default} (managed) or target_utilization (Kubernetes).
	ScaleSettings *ScaleSettings `json:"scale_settings,omitempty"`
	// RequestSettings bounds requests; nil means Azure's defaults
	// (5000 ms, 1 concurrent request per instance, 500 ms queue wait).
	RequestSettings *RequestSettings `json:"request_settings,omitempty"`
	// LivenessProbe restarts an instance that stops answering; nil means
	// the defaults (10/10/2/1/30).
	LivenessProbe *ProbeSettings `json:"liveness_probe,omitempty"`
	// ReadinessProbe gates traffic to an instance; nil means the defaults.
	ReadinessProbe *ProbeSettings `json:"readiness_probe,omitempty"`
	// DataCollector is Azure's payload collection; kept as written and
	// ignored. nil means none.
	DataCollector DataCollector `json:"data_collector,omitempty" spec:"ignored"`
	// EgressPublicNetworkAccess is enabled or disabled; ignored. "" means
	// enabled.
	EgressPublicNetworkAccess string `json:"egress_public_network_access,omitempty" spec:"ignored"`
	// PrivateNetworkConnection is Azure's private networking flag; ignored.
	// nil means false.
	PrivateNetworkConnection *bool `json:"private_network_connection,omitempty" spec:"ignored"`
	// Resources are Kubernetes requests and limits; Kubernetes only. nil
	// means none (the instance type's size, if known).
	Resources *ResourceRequirements `json:"resources,omitempty"`
	// Plumbline is plumbline's extension block; nil means none.
	Plumbline *DeploymentExtension `json:"plumbline,omitempty"`
}

// R runtimes for an R plumber deployment (plumbline.r_runtime).
const (
	// RRuntimeLean is plumbline's lean R runtime: plumber.R loaded once,
	// workers forked from the loaded session, requests handed over pipes.
	RRuntimeLean = "lean"
	// RRuntimePlumber is plumber's own server (httpuv), as the seed's
	// start_plumber.R runs it.
	RRuntimePlumber = "plumber"
)

// Bounds of the lean runtime's settings.
const (
	// MaxRWorkers bounds plumbline.workers.
	MaxRWorkers = 256
	// DefaultRWorkersCap caps the workers taken from
	// max_concurrent_requests_per_instance when plumbline.workers is not set.
	DefaultRWorkersCap = 32
)

// DeploymentExtension is the deployment's plumbline: block, plumbline's own
// settings next to Azure's.
type DeploymentExtension struct {
	// Scorer is "builtin": serve the model with plumbline's built-in scorer
	// (an MLflow model, a vetiver pin, an .rds or a crate.bin) with no
	// environment and no scoring script. "" means builtin when the model is
	// an mlflow_model and the deployment names no environment (Azure's
	// no-code deployment), and otherwise the environment's server.
	Scorer string `json:"scorer,omitempty"`
	// Input is the input contract the gateway enforces before a request
	// reaches the model; nil means the model's own, if it has one (a vetiver
	// pin's prototype, or one given with model create --prototype).
	Input *InputContract `json:"input,omitempty"`
	// Capture writes a sampled share of the deployment's request/response
	// pairs, redacted, to JSON Lines files (and an HTTP sink); nil means
	// nothing is captured.
	Capture *CaptureSettings `json:"capture,omitempty"`
	// Rollout is how `online-deployment rollout` shifts traffic to this
	// deployment by default: steps, bake time and gates; nil means the
	// defaults (10, 25, 50, 100 % with 60 s and 100 requests per step).
	Rollout *RolloutSettings `json:"rollout,omitempty"`

	// RRuntime is lean (plumbline's R workers) or plumber (plumber's own
	// server); "" lets plumbline choose: lean, unless plumber.R uses
	// something only plumber's own server serves.
	RRuntime string `json:"r_runtime,omitempty"`
	// Workers is the lean runtime's R workers per instance, 1–256; nil
	// means max_concurrent_requests_per_instance, at most 32.
	Workers *int `json:"workers,omitempty"`
	// MaxRequestsPerWorker replaces a lean worker after it served this
	// many requests; nil or 0 means never.
	MaxRequestsPerWorker *int `json:"max_requests_per_worker,omitempty"`
	// MaxWorkerMemory replaces a lean worker once its resident memory
	// passed this size ("2Gi", "500Mi"); "" means twice the loaded
	// session's resident memory plus 1 GiB.
	MaxWorkerMemory string `json:"max_worker_memory,omitempty"`
	// ErrorDetail says whether an R error's message, call and class go
	// back to the caller in the error body (docs/runtime.md, "When R fails
	// while scoring"); the request id and deployment always do. nil means
	// the server's default (plumbline serve --error-detail: on when it
	// listens on loopback only).
	ErrorDetail *bool `json:"error_detail,omitempty"`
	// SampleRequest is a request body each new instance must answer with a
	// 2xx before it joins the pool; until it does the deployment is not
	// Succeeded and gets no traffic. In a YAML file it is the path of a
	// JSON file (relative to the YAML file), which parsing reads, or the
	// request inline (a mapping or a list); documents sent to the API carry
	// it inline. nil means no sample request.
	SampleRequest any `json:"sample_request,omitempty"`

	// Autoscale tunes the autoscaler of a deployment with scale_settings
	// type target_utilization; nil means the defaults.
	Autoscale *AutoscaleSettings `json:"autoscale,omitempty"`
}

// AutoscaleSettings is the deployment's plumbline.autoscale: the windows
// and bounds of the autoscaler, next to Azure's four scale_settings. Every
// field is optional.
type AutoscaleSettings struct {
	// StableWindow is the window, in seconds, over which the average
	// concurrency decides the instance count in stable mode (1–3600); nil
	// means 60.
	StableWindow *int `json:"stable_window,omitempty" spec:"unit=seconds"`
	// PanicWindow is the short window, in seconds, that detects a burst
	// (1 – stable_window); nil means a tenth of stable_window, at least 1.
	PanicWindow *int `json:"panic_window,omitempty" spec:"unit=seconds"`
	// PanicThresholdPercentage is how far above the target the panic
	// window's concurrency must be to scale out at once, never in, until a
	// stable window has passed (more than 100); nil means 200.
	PanicThresholdPercentage *int `json:"panic_threshold_percentage,omitempty" spec:"unit=percent"`
	// ScaleDownDelay is how long, in seconds, a lower instance count must
	// be wanted before instances stop (0–3600); nil means 20 polling
	// intervals.
	ScaleDownDelay *int `json:"scale_down_delay,omitempty" spec:"unit=seconds"`
	// ScaleToZeroAfter is how long, in seconds, a deployment with
	// min_instances 0 must go without a request before its last instance
	// stops (1–86400); nil means 300. Ignored while min_instances is 1 or
	// more.
	ScaleToZeroAfter *int `json:"scale_to_zero_after,omitempty" spec:"unit=seconds"`
	// KeepLoadedFor is how long, in seconds, an instance of the lean R
	// runtime scaled to zero keeps its loaded R session (the model in
	// memory, no worker, no CPU) so that the next request forks a worker
	// in milliseconds instead of starting R; then it stops (0–86400). 0
	// stops it at once. nil means 600. Other runtimes stop at once.
	KeepLoadedFor *int `json:"keep_loaded_for,omitempty" spec:"unit=seconds"`
	// MaxPendingRequests bounds the requests each gateway holds in flight
	// and queued for the deployment while it scales (beyond it: 429 with
	// Retry-After); nil means 2 × max_concurrent_requests_per_instance ×
	// max_instances, Azure's bound at full scale.
	MaxPendingRequests *int `json:"max_pending_requests,omitempty"`
}

// MaxSampleRequestBytes bounds plumbline.sample_request once encoded as JSON.
const MaxSampleRequestBytes = 1 << 20

// Scorers (plumbline.scorer).
const (
	ScorerBuiltin = "builtin"
)

// Input contract policies.
const (
	ExtraColumnsReject = "reject"
	ExtraColumnsIgnore = "ignore"
	AllNAReject        = "reject"
	AllNAAllow         = "allow"
)

// InputContract is a deployment's plumbline.input: a data-frame prototype
// or a JSON Schema for request bodies, and what to do with columns the
// prototype does not name and with columns whose every value is null.
type InputContract struct {
	// Prototype maps each column to its type: vetiver's /prototype form
	// ({col: {type: numeric, details: {levels: [...]}}}) or the short form
	// {col: numeric}, with types numeric (double), integer, character,
	// logical, factor (with details.levels), Date, POSIXct. nil means none.
	Prototype map[string]any `json:"prototype,omitempty"`
	// JSONSchema is a JSON Schema every request body must satisfy; nil
	// means none. At most one of Prototype and JSONSchema is set.
	JSONSchema map[string]any `json:"json_schema,omitempty"`
	// ExtraColumns is reject (a 422 names each column the prototype does
	// not have) or ignore (they pass through); "" means reject.
	ExtraColumns string `json:"extra_columns,omitempty"`
	// AllNAColumns is reject (a 422 names a column whose every value is
	// null) or allow; "" means reject.
	AllNAColumns string `json:"all_na_columns,omitempty"`
}

// CodeConfiguration is a deployment's scoring code.
type CodeConfiguration struct {
	// Code is the code folder: a local path (absolute once parsed with a
	// BaseDir), sha256:<digest> after upload, or a code asset
	// (azureml:…). Required.
	Code string `json:"code"`
	// ScoringScript is the entry script, relative to Code (plumber.R,
	// score.py). Required.
	ScoringScript string `json:"scoring_script"`
}

// ScaleSettings chooses the instance count.
type ScaleSettings struct {
	// Type is default (a fixed instance_count) or target_utilization
	// (Kubernetes autoscaling); "" means the deployment type's default.
	Type string `json:"type,omitempty"`
	// MinInstances is the autoscaler's floor (target_utilization only);
	// nil means 1. 0 (plumbline's extension) stops every instance after
	// plumbline.autoscale.scale_to_zero_after without a request, and starts
	// one again when a request comes.
	MinInstances *int `json:"min_instances,omitempty"`
	// MaxInstances is the autoscaler's ceiling (target_utilization only);
	// nil means 1.
	MaxInstances *int `json:"max_instances,omitempty"`
	// TargetUtilizationPercentage is the target, 1–100, of requests in
	// flight and queued per instance as a share of
	// max_concurrent_requests_per_instance (target_utilization only); nil
	// means 70.
	TargetUtilizationPercentage *int `json:"target_utilization_percentage,omitempty" spec:"unit=percent"`
	// PollingInterval is how often the autoscaler looks, in seconds
	// (target_utilization only); nil means 1.
	PollingInterval *int `json:"polling_interval,omitempty" spec:"unit=seconds"`
}

// RequestSettings bounds scoring requests.
type RequestSettings struct {
	// RequestTimeoutMs is the scoring timeout in milliseconds, 1–180000
	// (managed) or 1–300000 (Kubernetes); nil means 5000. Past it the
	// caller gets 408.
	RequestTimeoutMs *int `json:"request_timeout_ms,omitempty" spec:"unit=milliseconds"`
	// MaxConcurrentRequestsPerInstance is the number of requests an
	// instance serves at once, ≥ 1; nil means 1.
	MaxConcurrentRequestsPerInstance *int `json:"max_concurrent_requests_per_instance,omitempty"`
	// MaxQueueWaitMs is how long a request may wait for a free instance, in
	// milliseconds, ≥ 0; nil means 500.
	MaxQueueWaitMs *int `json:"max_queue_wait_ms,omitempty" spec:"unit=milliseconds"`
}

// ProbeSettings is a liveness or readiness probe. Durations are seconds.
type ProbeSettings struct {
	// InitialDelay is the wait before the first probe, ≥ 0 (plumbline
	// accepts 0, "probe at once"; Azure's minimum is 1). nil means not set:
	// Defaulted makes it 10, and the runtime can tell the two apart by
	// looking at the document before Defaulted.
	InitialDelay *int `json:"initial_delay,omitempty" spec:"unit=seconds"`
	// Period between probes, ≥ 1; nil means 10.
	Period *int `json:"period,omitempty" spec:"unit=seconds"`
	// Timeout of one probe, ≥ 1; nil means 2.
	Timeout *int `json:"timeout,omitempty" spec:"unit=seconds"`
	// SuccessThreshold is the successes needed after a failure, ≥ 1 (always
	// 1 for liveness); nil means 1.
	SuccessThreshold *int `json:"success_threshold,omitempty"`
	// FailureThreshold is the failures before acting (liveness: restart;
	// readiness: no traffic), ≥ 1; nil means 30.
	FailureThreshold *int `json:"failure_threshold,omitempty"`
}

// ResourceRequirements are Kubernetes requests and limits.
type ResourceRequirements struct {
	// Requests are the guaranteed resources; nil means none.
	Requests *ResourceSettings `json:"requests,omitempty"`
	// Limits are the maximum resources; nil means none.
	Limits *ResourceSettings `json:"limits,omitempty"`
}

// ResourceSettings is a Kubernetes resource list. Values are Kubernetes
// quantities written as strings ("0.5", "100m", "1Gi"); "" means not set.
type ResourceSettings struct {
	// CPU in cores ("0.5") or millicores ("500m"); "" means not set.
	CPU string `json:"cpu,omitempty"`
	// Memory in bytes or with a suffix ("512Mi", "1Gi"); "" means not set.
	Memory string `json:"memory,omitempty"`
	// GPU is a whole number of NVIDIA GPUs; "" means none.
	GPU string `json:"nvidia.com/gpu,omitempty"`
}

// DataCollector is Azure's data_collector block, kept as written.
type DataCollector map[string]any

var dataCollectorKeys = []string{"collections", "sampling_rate", "rolling_rate", "request_logging",
	"enabled", "destination", "sampling_strategy"}

func (c *DataCollector) unmarshalNode(d *decoder, path string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		d.unexpected(path, n, "a mapping (collections, sampling_rate, rolling_rate)")
		return
	}
	for i := 0; i+1 < len(n.Content) && !d.full(); i += 2 {
		k := n.Content[i]
		if !contains(dataCollectorKeys, k.Value) {
			msg := "unknown field; expected one of collections, sampling_rate, rolling_rate, request_logging"
			if s := nearest(k.Value, dataCollectorKeys); s != "" {
				msg = "unknown field; did you mean " + s + "?"
			}
			d.fail(k, joinPath(path, k.Value), "%s", msg)
		}
	}
	if m, ok := d.genericMap(path, n); ok {
		*c = m
	}
}

func (*Deployment) readOnlyFields() []string {
	return []string{"provisioning_state", "id", "creation_context", "kind", "location", "scoring_uri"}
}

// IsKubernetes reports whether the deployment is a Kubernetes one: type
// kubernetes, or no (valid) type and a kubernetesOnlineDeployment $schema.
func (d *Deployment) IsKubernetes() bool {
	switch snakeCase(d.Type) {
	case DeploymentKubernetes:
		return true
	case DeploymentManaged:
		return false
	}
	return schemaName(d.Schema) == "kubernetesonlinedeployment"
}

func (d *Deployment) normalize() {
	if d.Type != "" {
		d.Type = snakeCase(d.Type)
	}
	if d.ScaleSettings != nil && d.ScaleSettings.Type != "" {
		d.ScaleSettings.Type = snakeCase(d.ScaleSettings.Type)
	}
	if d.EgressPublicNetworkAccess != "" {
		d.EgressPublicNetworkAccess = lower(d.EgressPublicNetworkAccess)
	}
	if d.Plumbline != nil && d.Plumbline.RRuntime != "" {
		d.Plumbline.RRuntime = lower(d.Plumbline.RRuntime)
	}
	if d.Model != nil && d.Model.Inline != nil {
		d.Model.Inline.normalize()
	}
	if d.Environment != nil && d.Environment.Inline != nil {
		d.Environment.Inline.normalize()
	}
}

// Defaulted returns a copy with every default applied, in one place: type
// (managed unless Kubernetes), request_settings 5000/1/500, both probes
// 10/10/2/1/30, scale_settings {type: default} (managed) or
// {target_utilization, 1, 1, 70, 1} (Kubernetes), and the inline model's
// and environment's defaults. d itself is not changed, so callers can still
// see which values the user set.
func (d *Deployment) Defaulted() *Deployment {
	c := clone(d)
	c.normalize()
	k8s := c.IsKubernetes()
	if c.Type == "" {
		c.Type = DeploymentManaged
		if k8s {
			c.Type = DeploymentKubernetes
		}
	}
	if c.RequestSettings == nil {
		c.RequestSettings = &RequestSettings{}
	}
	r := c.RequestSettings
	setDefault(&r.RequestTimeoutMs, DefaultRequestTimeoutMs)
	setDefault(&r.MaxConcurrentRequestsPerInstance, DefaultMaxConcurrentRequests)
	setDefault(&r.MaxQueueWaitMs, DefaultMaxQueueWaitMs)
	c.LivenessProbe = defaultProbe(c.LivenessProbe)
	c.ReadinessProbe = defaultProbe(c.ReadinessProbe)
	if c.ScaleSettings == nil {
		c.ScaleSettings = &ScaleSettings{}
	}
	s := c.ScaleSettings
	if s.Type == "" {
		s.Type = ScaleDefault
		if k8s {
			s.Type = ScaleTargetUtilization
		}
	}
	if s.Type == ScaleTargetUtilization {
		setDefault(&s.MinInstances, DefaultMinInstances)
		setDefault(&s.MaxInstances, DefaultMaxInstances)
		setDefault(&s.TargetUtilizationPercentage, DefaultTargetUtilizationPercentage)
		setDefault(&s.PollingInterval, DefaultPollingInterval)
	}
	if c.Model != nil && c.Model.Inline != nil {
		c.Model.Inline = c.Model.Inline.Defaulted()
	}
	if c.Environment != nil && c.Environment.Inline != nil {
		c.Environment.Inline = c.Environment.Inline.Defaulted()
	}
	return c
}

func defaultProbe(p *ProbeSettings) *ProbeSettings {
	if p == nil {
		p = &ProbeSettings{}
	}
	setDefault(&p.InitialDelay, DefaultProbeInitialDelay)
	setDefault(&p.Period, DefaultProbePeriod)
	setDefault(&p.Timeout, DefaultProbeTimeout)
	setDefault(&p.SuccessThreshold, DefaultProbeSuccessThreshold)
	setDefault(&p.FailureThreshold, DefaultProbeFailureThreshold)
	return p
}

func setDefault(p **int, v int) {
	if *p == nil {
		*p = &v
	}
}

// LocalPaths lists the deployment's local paths: a model given as a path,
// an inline model's path, code_configuration.code, and an inline
// environment's build.path and conda_file. Set on each rewrites the
// document (the CLI replaces each with sha256:<digest> after upload).
func (d *Deployment) LocalPaths() []PathRef {
	var out []PathRef
	if m := d.Model; m != nil {
		switch {
		case m.Inline != nil:
			for _, r := range m.Inline.LocalPaths() {
				r.Field = "model." + r.Field
				out = append(out, r)
			}
		case m.Kind == RefLocalPath:
			out = append(out, PathRef{Field: "model", Path: m.Path, set: m.setPath})
		}
	}
	if d.CodeConfiguration != nil {
		out = append(out, localPath("code_configuration.code", &d.CodeConfiguration.Code)...)
	}
	if e := d.Environment; e != nil && e.Inline != nil {
		for _, r := range e.Inline.LocalPaths() {
			r.Field = "environment." + r.Field
			out = append(out, r)
		}
	}
	return out
}
