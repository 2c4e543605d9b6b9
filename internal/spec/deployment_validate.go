package spec

import (
	"encoding/json"
	"path"
	"strings"
)

// Validate checks the deployment against Azure's rules for its type
// (managed or Kubernetes), including an inline model and environment.
func (d *Deployment) Validate() error {
	var p problems
	k8s := d.IsKubernetes()
	kind := "managed"
	if k8s {
		kind = "Kubernetes"
	}
	if d.Name == "" {
		p.add("name", "missing; a deployment needs a name (3-32 characters: letters, digits and '-', starting with a letter)")
	} else if err := ValidateName("deployment", d.Name); err != nil {
		p.add("name", "%v", err)
	}
	// A missing endpoint_name is not an error here: Azure's own samples
	// leave it to `--endpoint-name`. Parse warns; create requires it.
	if d.EndpointName != "" {
		if err := ValidateName("endpoint", d.EndpointName); err != nil {
			p.add("endpoint_name", "%v", err)
		}
	}
	if d.Schema != "" && schemaKind(d.Schema) != KindDeployment {
		p.add("$schema", "%s is not an online deployment schema (managedOnlineDeployment or kubernetesOnlineDeployment)", quote(d.Schema))
	}
	if d.Type != "" {
		if msg := oneOf(d.Type, DeploymentManaged, DeploymentKubernetes); msg != "" {
			p.add("type", "%s", msg)
		} else if s := schemaName(d.Schema); (s == "kubernetesonlinedeployment" && !k8s) || (s == "managedonlinedeployment" && k8s) {
			p.add("type", "type %s contradicts $schema %s; remove one", snakeCase(d.Type), quote(d.Schema))
		}
	}

	// Model, code, environment.
	if m := d.Model; m != nil {
		if m.Inline != nil {
			p.nest("model", m.Inline.validate(true))
		} else if _, err := ParseModelRef(m.Raw); err != nil {
			p.add("model", "%v", err)
		}
	}
	if d.ModelMountPath != "" && !strings.HasPrefix(d.ModelMountPath, "/") {
		p.add("model_mount_path", "must be an absolute Linux path (starting with /); got %s", quote(d.ModelMountPath))
	}
	if c := d.CodeConfiguration; c != nil {
		if c.Code == "" {
			p.add("code_configuration.code", "missing; set the folder that holds the scoring script")
		}
		switch s := c.ScoringScript; {
		case s == "":
			p.add("code_configuration.scoring_script", "missing; set the entry script's path inside code (for example plumber.R or score.py)")
		case path.IsAbs(s) || strings.HasPrefix(path.Clean(s), "../") || path.Clean(s) == "..":
			p.add("code_configuration.scoring_script", "must be a path inside code_configuration.code; got %s", quote(s))
		}
	}
	switch e := d.Environment; {
	case (e == nil || (e.Raw == "" && e.Inline == nil)) && d.NoCode():
		// A no-code deployment: the model is served without environment
		// and scoring script (Azure's MLflow and Triton models, plumbline's
		// built-in scorer). A registered model's type is checked when the
		// deployment is created.
	case e == nil || (e.Raw == "" && e.Inline == nil):
		p.add("environment", "missing; set an environment: azureml:<name>:<version>, or inline with image and inference_config")
	case e.Inline != nil:
		p.nest("environment", e.Inline.validate(true))
	default:
		if _, err := ParseEnvironmentRef(e.Raw); err != nil {
			p.add("environment", "%v", err)
		}
	}
	if x := d.Plumbline; x != nil {
		validateExtension(&p, x, d)
	}
	for _, k := range sortedKeys(d.EnvironmentVariables) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			p.add("environment_variables", "%s is not a valid environment variable name", quote(k))
		}
	}

	// Instances.
	scaleType := ScaleDefault
	if k8s {
		scaleType = ScaleTargetUtilization
	}
	if d.ScaleSettings != nil && d.ScaleSettings.Type != "" {
		scaleType = snakeCase(d.ScaleSettings.Type)
	}
	if !k8s && d.InstanceType == "" {
		p.add("instance_type", "missing; a managed deployment needs a size such as Standard_DS3_v2")
	}
	switch c := d.InstanceCount; {
	case c == nil:
		if !k8s && scaleType == ScaleDefault {
			p.add("instance_count", "missing; a managed deployment needs instance_count (1 or more), or scale_settings type target_utilization")
		} else if scaleType == ScaleDefault {
			p.add("instance_count", "missing; scale_settings type default needs instance_count (1 or more)")
		}
	case *c < 1:
		p.add("instance_count", "must be at least 1; got %d", *c)
	case !k8s && *c > MaxInstanceCountManaged:
		p.add("instance_count", "must be at most %d for a managed deployment (Azure's limit); got %d", MaxInstanceCountManaged, *c)
	}
	if s := d.ScaleSettings; s != nil {
		validateScale(&p, s, k8s)
	}
	if c := d.InstanceCount; c != nil && *c >= 1 && scaleType == ScaleTargetUtilization && d.ScaleSettings != nil {
		lo, hi := scaleBounds(d.ScaleSettings)
		if *c < lo || *c > hi {
			p.add("instance_count", "with scale_settings type target_utilization it is the count to start with, within min_instances–max_instances (%d–%d); got %d", lo, hi, *c)
		}
	}
	if x := d.Plumbline; x != nil && x.Autoscale != nil {
		if scaleType != ScaleTargetUtilization {
			p.add("plumbline.autoscale", "applies only to scale_settings type target_utilization (the autoscaler); with type default, instance_count is fixed")
		} else {
			validateAutoscale(&p, x.Autoscale)
		}
	}

	// Requests and probes.
	if r := d.RequestSettings; r != nil {
		maxTimeout := MaxRequestTimeoutMsManaged
		if k8s {
			maxTimeout = MaxRequestTimeoutMsKubernetes
		}
		if v := r.RequestTimeoutMs; v != nil && (*v < 1 || *v > maxTimeout) {
			p.add("request_settings.request_timeout_ms", "must be from 1 to %d (%d s, the limit for %s deployments); got %d",
				maxTimeout, maxTimeout/1000, kind, *v)
		}
		if v := r.MaxConcurrentRequestsPerInstance; v != nil && *v < 1 {
			p.add("request_settings.max_concurrent_requests_per_instance", "must be at least 1; got %d", *v)
		}
		if v := r.MaxQueueWaitMs; v != nil && *v < 0 {
			p.add("request_settings.max_queue_wait_ms", "must be 0 or more; got %d", *v)
		}
	}
	validateProbe(&p, "liveness_probe", d.LivenessProbe, true)
	validateProbe(&p, "readiness_probe", d.ReadinessProbe, false)

	if x := d.Plumbline; x != nil {
		validateRExtension(&p, x)
	}

	// Azure-only fields and Kubernetes resources.
	if d.EgressPublicNetworkAccess != "" {
		if msg := oneOf(lower(d.EgressPublicNetworkAccess), "enabled", "disabled"); msg != "" {
			p.add("egress_public_network_access", "%s", msg)
		}
	}
	if d.Resources != nil {
		if !k8s {
			p.add("resources", "resources is for Kubernetes deployments (type: kubernetes) only; a managed deployment is sized by instance_type")
		} else {
			validateResources(&p, d.Resources)
		}
	}
	return p.err()
}

func validateScale(p *problems, s *ScaleSettings, k8s bool) {
	t := ScaleDefault
	if k8s {
		t = ScaleTargetUtilization
	}
	if s.Type != "" {
		if msg := oneOf(s.Type, ScaleDefault, ScaleTargetUtilization); msg != "" {
			p.add("scale_settings.type", "%s", msg)
			return
		}
		t = snakeCase(s.Type)
	}
	fields := []struct {
		name string
		v    *int
	}{{"min_instances", s.MinInstances}, {"max_instances", s.MaxInstances},
		{"target_utilization_percentage", s.TargetUtilizationPercentage}, {"polling_interval", s.PollingInterval}}
	if t == ScaleDefault {
		for _, f := range fields {
			if f.v != nil {
				p.add("scale_settings."+f.name, "applies only to scale_settings type target_utilization; with type default, set instance_count")
			}
		}
		return
	}
	if v := s.MinInstances; v != nil && *v < 0 {
		p.add("scale_settings.min_instances", "must be 0 (scale to zero, plumbline's extension) or more; got %d", *v)
	}
	if v := s.MaxInstances; v != nil && *v < 1 {
		p.add("scale_settings.max_instances", "must be at least 1; got %d", *v)
	} else if v != nil && !k8s && *v > MaxInstanceCountManaged {
		p.add("scale_settings.max_instances", "must be at most %d for a managed deployment (Azure's limit); got %d", MaxInstanceCountManaged, *v)
	}
	lo, hi := scaleBounds(s)
	if lo >= 0 && hi >= 1 && hi < lo {
		p.add("scale_settings.max_instances", "must be at least min_instances (%d); got %d", lo, hi)
	}
	if v := s.TargetUtilizationPercentage; v != nil && (*v < 1 || *v > 100) {
		p.add("scale_settings.target_utilization_percentage", "must be from 1 to 100; got %d", *v)
	}
	if v := s.PollingInterval; v != nil && *v < 1 {
		p.add("scale_settings.polling_interval", "must be at least 1 second; got %d", *v)
	}
}

// scaleBounds is min_instances and max_instances with their defaults.
func scaleBounds(s *ScaleSettings) (lo, hi int) {
	lo, hi = DefaultMinInstances, DefaultMaxInstances
	if s.MinInstances != nil {
		lo = *s.MinInstances
	}
	if s.MaxInstances != nil {
		hi = *s.MaxInstances
	}
	return lo, hi
}

// validateAutoscale checks plumbline.autoscale.
func validateAutoscale(p *problems, a *AutoscaleSettings) {
	stable := DefaultStableWindow
	if v := a.StableWindow; v != nil {
		if *v < 1 || *v > MaxAutoscaleWindow {
			p.add("plumbline.autoscale.stable_window", "must be from 1 to %d seconds; got %d", MaxAutoscaleWindow, *v)
		} else {
			stable = *v
		}
	}
	if v := a.PanicWindow; v != nil && (*v < 1 || *v > stable) {
		p.add("plumbline.autoscale.panic_window", "must be from 1 second to stable_window (%d s); got %d", stable, *v)
	}
	if v := a.PanicThresholdPercentage; v != nil && (*v <= 100 || *v > 1000) {
		p.add("plumbline.autoscale.panic_threshold_percentage", "must be more than 100 and at most 1000 (percent of the target); got %d", *v)
	}
	if v := a.ScaleDownDelay; v != nil && (*v < 0 || *v > MaxAutoscaleWindow) {
		p.add("plumbline.autoscale.scale_down_delay", "must be from 0 to %d seconds; got %d", MaxAutoscaleWindow, *v)
	}
	if v := a.ScaleToZeroAfter; v != nil && (*v < 1 || *v > 86400) {
		p.add("plumbline.autoscale.scale_to_zero_after", "must be from 1 to 86400 seconds (a day); got %d", *v)
	}
	if v := a.KeepLoadedFor; v != nil && (*v < 0 || *v > 86400) {
		p.add("plumbline.autoscale.keep_loaded_for", "must be from 0 (stop at once) to 86400 seconds (a day); got %d", *v)
	}
	if v := a.MaxPendingRequests; v != nil && *v < 1 {
		p.add("plumbline.autoscale.max_pending_requests", "must be at least 1; got %d", *v)
	}
}

func validateProbe(p *problems, name string, pr *ProbeSettings, liveness bool) {
	if pr == nil {
		return
	}
	if v := pr.InitialDelay; v != nil && *v < 0 {
		p.add(name+".initial_delay", "must be 0 or more seconds; got %d", *v)
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"period", pr.Period}, {"timeout", pr.Timeout}, {"failure_threshold", pr.FailureThreshold}} {
		if f.v != nil && *f.v < 1 {
			p.add(name+"."+f.name, "must be at least 1; got %d", *f.v)
		}
	}
	if v := pr.SuccessThreshold; v != nil {
		switch {
		case liveness && *v != 1:
			p.add(name+".success_threshold", "must be 1 for a liveness probe (Azure fixes it at 1); got %d", *v)
		case *v < 1:
			p.add(name+".success_threshold", "must be at least 1; got %d", *v)
		}
	}
}

func validateResources(p *problems, r *ResourceRequirements) {
	type parsed struct{ cpu, mem, gpu float64 }
	read := func(prefix string, s *ResourceSettings) (parsed, [3]bool) {
		var out parsed
		var set [3]bool
		if s == nil {
			return out, set
		}
		if s.CPU != "" {
			if v, err := ParseCPU(s.CPU); err != nil {
				p.add(prefix+".cpu", "%v", err)
			} else {
				out.cpu, set[0] = v, true
			}
		}
		if s.Memory != "" {
			if v, err := ParseMemory(s.Memory); err != nil {
				p.add(prefix+".memory", "%v", err)
			} else {
				out.mem, set[1] = float64(v), true
			}
		}
		if s.GPU != "" {
			if v, err := ParseGPU(s.GPU); err != nil {
				p.add(prefix+".nvidia.com/gpu", "%v", err)
			} else {
				out.gpu, set[2] = float64(v), true
			}
		}
		return out, set
	}
	req, rs := read("resources.requests", r.Requests)
	lim, ls := read("resources.limits", r.Limits)
	check := func(i int, name string, a, b float64, av, bv string) {
		if rs[i] && ls[i] && a > b {
			p.add("resources.requests."+name, "Resource requests greater than limits: requests %s > limits %s", av, bv)
		}
	}
	if r.Requests != nil && r.Limits != nil {
		check(0, "cpu", req.cpu, lim.cpu, r.Requests.CPU, r.Limits.CPU)
		check(1, "memory", req.mem, lim.mem, r.Requests.Memory, r.Limits.Memory)
		check(2, "nvidia.com/gpu", req.gpu, lim.gpu, r.Requests.GPU, r.Limits.GPU)
	}
}

// validateRExtension checks the lean R runtime's settings in the
// deployment's plumbline: block.
func validateRExtension(p *problems, x *DeploymentExtension) {
	if x.RRuntime != "" {
		if msg := oneOf(lower(x.RRuntime), RRuntimeLean, RRuntimePlumber); msg != "" {
			p.add("plumbline.r_runtime", "%s", msg)
		}
	}
	if v := x.Workers; v != nil && (*v < 1 || *v > MaxRWorkers) {
		p.add("plumbline.workers", "must be from 1 to %d (R worker processes per instance); got %d", MaxRWorkers, *v)
	}
	if v := x.MaxRequestsPerWorker; v != nil && *v < 0 {
		p.add("plumbline.max_requests_per_worker", "must be 0 (never recycle) or more; got %d", *v)
	}
	if x.MaxWorkerMemory != "" {
		if m, err := ParseMemory(x.MaxWorkerMemory); err != nil {
			p.add("plumbline.max_worker_memory", "%v", err)
		} else if m < 64<<20 {
			p.add("plumbline.max_worker_memory", "must be at least 64Mi (an R process needs more); got %s", quote(x.MaxWorkerMemory))
		}
	}
}

// NoCode reports whether the deployment may run without environment and
// scoring script: it has no code_configuration and either names
// plumbline.scorer builtin with a model, or its model is an inline
// mlflow_model or triton_model, or a registered model reference (whose type,
// known only to the server, is checked when the deployment is created, as
// Azure does).
func (d *Deployment) NoCode() bool {
	if d.CodeConfiguration != nil || d.Model == nil {
		return false
	}
	if d.Plumbline != nil && lower(d.Plumbline.Scorer) == ScorerBuiltin {
		return true
	}
	m := d.Model
	switch {
	case m.Inline != nil:
		switch snakeCase(m.Inline.Type) {
		case ModelTypeMLflow, ModelTypeTriton:
			return true
		}
		return false
	case m.Kind == RefRegistered || m.Kind == RefRegistry:
		return true
	}
	return false
}

func validateExtension(p *problems, x *DeploymentExtension, d *Deployment) {
	if x.Scorer != "" {
		if msg := oneOf(lower(x.Scorer), ScorerBuiltin); msg != "" {
			p.add("plumbline.scorer", "%s", msg)
		} else if d.Model == nil {
			p.add("plumbline.scorer", "the built-in scorer serves the deployment's model; set model (a path, azureml:<name>:<version> or an inline model)")
		} else if d.CodeConfiguration != nil {
			p.add("plumbline.scorer", "the built-in scorer needs no scoring script; remove code_configuration, or remove plumbline.scorer to run your script")
		}
	}
	if x.Capture != nil {
		validateCapture(p, x.Capture)
	}
	if x.Rollout != nil {
		validateRollout(p, x.Rollout, "plumbline.rollout")
	}
	switch v := x.SampleRequest.(type) {
	case nil, map[string]any, []any:
		if b, err := json.Marshal(v); err != nil {
			p.add("plumbline.sample_request", "cannot be encoded as JSON: %v", err)
		} else if len(b) > MaxSampleRequestBytes {
			p.add("plumbline.sample_request", "is %d bytes of JSON; keep a sample request under %d bytes", len(b), MaxSampleRequestBytes)
		}
	case string:
		p.add("plumbline.sample_request", "%s is a file path, which only the CLI reads (next to the YAML file); send the request inline (a JSON object or list)", quote(v))
	default:
		p.add("plumbline.sample_request", "must be a request body: a JSON object or list, or in a YAML file the path of a JSON file")
	}
	in := x.Input
	if in == nil {
		return
	}
	switch {
	case in.Prototype == nil && in.JSONSchema == nil:
		p.add("plumbline.input", "set prototype (the columns and their types) or json_schema")
	case in.Prototype != nil && in.JSONSchema != nil:
		p.add("plumbline.input", "prototype and json_schema cannot both be set; keep one")
	case in.Prototype != nil && len(in.Prototype) == 0:
		p.add("plumbline.input.prototype", "has no columns; name each column with its type, for example sepal_length: numeric")
	}
	if in.ExtraColumns != "" {
		if msg := oneOf(lower(in.ExtraColumns), ExtraColumnsReject, ExtraColumnsIgnore); msg != "" {
			p.add("plumbline.input.extra_columns", "%s", msg)
		}
	}
	if in.AllNAColumns != "" {
		if msg := oneOf(lower(in.AllNAColumns), AllNAReject, AllNAAllow); msg != "" {
			p.add("plumbline.input.all_na_columns", "%s", msg)
		}
	}
}
