package resolve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plumbline/plumbline/internal/container"
	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/plumber"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/rworker"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
)

// Error is a deployment the resolver cannot pin, because of something the
// user must change (a model that is not registered, a scoring script that is
// not in the code folder).
type Error struct {
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Field + ": " + e.Message }

func errorf(field, format string, args ...any) *Error {
	return &Error{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Resolver pins deployments against a registry.
type Resolver struct {
	reg *registry.Registry

	// Rscript reads a vetiver pin's prototype ("" means Rscript on PATH).
	Rscript string
	// Python serves MLflow python_function models ("" means python3).
	Python string
	// ErrorDetail is the server's default for plumbline.error_detail:
	// whether an R error's message reaches the caller.
	ErrorDetail bool
	// Containers says the plans run under a container driver (docker,
	// kubernetes): images run their own command, as on Azure, and a build
	// context is built into an image. False: the process driver.
	Containers bool
	// Sandbox, if set, is applied to every R process that reads a user's
	// model (reading a pin's prototype): it runs as the instances' user.
	Sandbox func(*exec.Cmd)

	scorerOnce   sync.Mutex // protects scorerDigest
	scorerDigest string
	prototypes   sync.Map // model digest + file → []contract.Column
}

// New returns a Resolver for the process driver.
func New(reg *registry.Registry) *Resolver { return &Resolver{reg: reg} }

// ForContainers returns a Resolver for a container driver (Containers).
func ForContainers(reg *registry.Registry) *Resolver { return &Resolver{reg: reg, Containers: true} }

// SetRegistry sets the registry of a Resolver made as a literal (with
// Rscript and Python); call it before the first Resolve.
func (r *Resolver) SetRegistry(reg *registry.Registry) { r.reg = reg }

// Marshal encodes the record for the store.
func (rec *Record) Marshal() ([]byte, error) { return json.Marshal(rec) }

// Resolve validates what the registry must hold and returns the stored
// record: the document with defaults and pinned references, and its Plan.
// d must already have passed Validate.
func (r *Resolver) Resolve(ctx context.Context, endpoint string, d *spec.Deployment) (*Record, error) {
	dd := d.Defaulted()
	p := &Plan{Endpoint: endpoint, Deployment: dd.Name}
	var notices []string

	// Model.
	var m store.ModelVersion
	if dd.Model != nil {
		var err error
		m, err = r.model(ctx, endpoint, dd.Name, *dd.Model)
		if err != nil {
			return nil, err
		}
		p.ModelName, p.ModelVersion, p.ModelDigest, p.ModelPath = m.Name, m.Version, m.Digest, m.PathBase
		pinned, err := spec.ParseModelRef("azureml:" + m.Name + ":" + m.Version)
		if err != nil {
			return nil, err
		}
		dd.Model = &pinned
	}

	// Code.
	if cc := dd.CodeConfiguration; cc != nil {
		if !isDigest(cc.Code) {
			return nil, notUploaded("code_configuration.code", cc.Code)
		}
		man, err := r.manifest(ctx, "code_configuration.code", cc.Code)
		if err != nil {
			return nil, err
		}
		root := man.Root()
		if root == "" || !isDir(man, root) {
			return nil, errorf("code_configuration.code", "the code snapshot %s is not one folder; give code_configuration.code a folder (e.g. ./src)", short(cc.Code))
		}
		script := path.Clean(strings.TrimPrefix(cc.ScoringScript, "./"))
		if !isFile(man, root+"/"+script) {
			return nil, errorf("code_configuration.scoring_script", "scoring script %s is not in the code folder %s (it holds: %s)", cc.ScoringScript, root, listFiles(man, root, 8))
		}
		p.CodeDigest, p.CodeRoot, p.EntryScript = cc.Code, root, script
	}

	// Environment and runtime: a deployment without environment is served
	// by a built-in scorer (a no-code deployment).
	var env *spec.Environment
	if dd.Environment == nil && r.Containers {
		return nil, errorf("environment", "a deployment without environment is served by plumbline's built-in scorer with this machine's R, under the process driver; under serve --driver docker give it an environment (image, or build with a Dockerfile)")
	}
	if dd.Environment == nil {
		more, err := r.noCode(ctx, dd, m, p)
		if err != nil {
			return nil, err
		}
		notices = append(notices, more...)
	} else {
		var err error
		if env, err = r.environment(ctx, dd, p, &notices); err != nil {
			return nil, err
		}
	}

	// Routes.
	if env != nil {
		p.Liveness, p.Readiness, p.Scoring = defaultRoutes(p.Runtime)
		if p.Runtime == driver.RuntimeImage && r.isPlumberImage(ctx, env, p) {
			// A plumber image (the seed's FROM rstudio/plumber) serves on 8000.
			p.Liveness, p.Readiness, p.Scoring = defaultRoutes(driver.RuntimePlumber)
			p.OpenAPIPath = "/openapi.json"
		}
		if p.Lean() {
			// Without inference_config, the lean runtime's supervisor
			// answers the probes on routes of its own (plumber's
			// /openapi.json stays the API's document).
			p.Liveness.Path, p.Readiness.Path = rworker.OwnLivenessPath, rworker.OwnReadinessPath
		}
		if ic := env.InferenceConfig; ic != nil {
			if ic.LivenessRoute != nil {
				p.Liveness = Route(*ic.LivenessRoute)
			}
			if ic.ReadinessRoute != nil {
				p.Readiness = Route(*ic.ReadinessRoute)
			}
			if ic.ScoringRoute != nil {
				p.Scoring = Route(*ic.ScoringRoute)
			}
		}
	}

	if p.Runtime == driver.RuntimePlumber {
		r.rSettings(dd, p)
	}
	if x := dd.Plumbline; x != nil && x.SampleRequest != nil {
		b, err := json.Marshal(x.SampleRequest)
		if err != nil {
			return nil, errorf("plumbline.sample_request", "%v", err)
		}
		p.SampleRequest = b
	}

	// Input contract.
	c, more, err := r.contractFor(ctx, dd, m, p)
	if err != nil {
		return nil, err
	}
	p.Contract = c
	notices = append(notices, more...)

	return r.finish(d, dd, p, notices)
}

// environment resolves the deployment's environment (inline, or a
// registered version, pinned): build context, runtime. It returns the
// environment with its defaults.
func (r *Resolver) environment(ctx context.Context, dd *spec.Deployment, p *Plan, notices *[]string) (*spec.Environment, error) {
	env, err := r.environmentDoc(ctx, dd, p)
	if err != nil {
		return nil, err
	}
	if b := env.Build; b != nil {
		if !isDigest(b.Path) {
			return nil, notUploaded("environment.build.path", b.Path)
		}
		man, err := r.manifest(ctx, "environment.build.path", b.Path)
		if err != nil {
			return nil, err
		}
		df := path.Clean(man.Root() + "/" + b.DockerfilePath)
		if !isFile(man, df) {
			return nil, errorf("environment.build.dockerfile_path", "%s is not in the build context %s", b.DockerfilePath, man.Root())
		}
		p.BuildDigest, p.Dockerfile = b.Path, df
	}
	p.Image = env.Image
	p.ModelMountPath = dd.ModelMountPath
	var runtime driver.Runtime
	var why string
	if r.Containers {
		runtime, *notices, err = r.containerRuntime(env, p, *notices)
	} else {
		if env.CondaFile != nil {
			*notices = append(*notices, "environment.conda_file is accepted; the process driver does not build conda environments: the scoring server runs with this machine's interpreters and packages")
		}
		runtime, why, err = r.runtime(ctx, dd, env, p)
	}
	if err != nil {
		return nil, err
	}
	p.Runtime = runtime
	switch runtime {
	case driver.RuntimePlumber:
		if p.EntryScript == "" {
			return nil, errorf("code_configuration", "an R plumber deployment needs code_configuration with its plumber.R scoring script")
		}
		img := env.Image
		if img == "" && env.Build != nil {
			img = "the image built from " + p.Dockerfile
		}
		if !r.Containers {
			// The process driver runs R itself: on the lean R runtime,
			// unless the script needs plumber's own server.
			rr, rwhy, err := r.rRuntime(ctx, dd, p)
			if err != nil {
				return nil, err
			}
			p.RRuntime = rr
			how := "under plumbline's built-in launcher (the equivalent of start_plumber.R)"
			if rr == spec.RRuntimeLean {
				how = "on plumbline's lean R runtime"
			}
			if img != "" {
				*notices = append(*notices, fmt.Sprintf("%s: %s is not needed locally; %s runs %s with this machine's R", why, img, p.EntryScript, how))
			}
			*notices = append(*notices, rwhy)
		}
		p.OpenAPIPath = "/openapi.json"
	case driver.RuntimeGeneric:
		p.Command = env.Plumbline.Command
		if len(p.Command) == 0 {
			return nil, errorf("environment.plumbline.command", "a generic environment needs plumbline.command, the command line of its HTTP server")
		}
	}
	return env, nil
}

// dockerfileFrom is the FROM image of the plan's build context's
// Dockerfile, "" when there is none or it cannot be read.
func (r *Resolver) dockerfileFrom(ctx context.Context, p *Plan) string {
	if p.BuildDigest == "" {
		return ""
	}
	dir, err := r.reg.Materialize(ctx, p.BuildDigest)
	if err != nil {
		return ""
	}
	df, err := readFile(dir, p.Dockerfile)
	if err != nil {
		return ""
	}
	return plumber.DockerfileFrom(df)
}

// isPlumberImage reports whether the environment's image is a plumber one
// (rstudio/plumber, or a Dockerfile FROM it).
func (r *Resolver) isPlumberImage(ctx context.Context, env *spec.Environment, p *Plan) bool {
	if env.Image != "" && plumber.IsPlumberImage(env.Image) {
		return true
	}
	from := r.dockerfileFrom(ctx, p)
	return from != "" && plumber.IsPlumberImage(from)
}

// containerRuntime decides how instances run under a container driver: the
// image's own command, as Azure runs it, unless the plumbline: block asks
// for the built-in plumber launcher or a command inside the image. A build
// context becomes an image tagged by its digest.
func (r *Resolver) containerRuntime(env *spec.Environment, p *Plan, notices []string) (driver.Runtime, []string, error) {
	if p.BuildDigest != "" {
		p.Image = container.BuildTag(p.BuildDigest, p.Dockerfile)
	}
	if p.Image == "" {
		return "", notices, errorf("environment", "the docker driver runs container images, and this environment has none: set environment.image, or environment.build with a Docker build context (plumbline.command alone runs under the process driver only)")
	}
	if env.CondaFile != nil {
		notices = append(notices, "environment.conda_file is stored but not built: the image must already hold the conda environment")
	}
	if x := env.Plumbline; x != nil {
		switch {
		case x.Runtime == spec.RuntimePlumber:
			return driver.RuntimePlumber, notices, nil
		case x.Runtime == spec.RuntimeGeneric || len(x.Command) > 0:
			return driver.RuntimeGeneric, notices, nil
		}
	}
	return driver.RuntimeImage, notices, nil
}

// environmentDoc returns the deployment's environment: inline, or a
// registered version, which it pins in d (azureml:<name>:<version>) and p.
func (r *Resolver) environmentDoc(ctx context.Context, d *spec.Deployment, p *Plan) (*spec.Environment, error) {
	ref := d.Environment
	switch {
	case ref.Inline != nil:
		return ref.Inline.Defaulted(), nil
	case ref.Kind == spec.RefRegistry:
		return nil, errorf("environment", "%s is an environment of the Azure registry %s, which is not available here; register an environment of your own (plumbline environment create -f env.yml) and refer to it as azureml:<name>:<version>, or give the environment inline", ref.Raw, ref.Registry)
	case ref.Kind != spec.RefRegistered:
		return nil, errorf("environment", "%s is not an environment reference; write azureml:<name>:<version> or azureml:<name>@latest", ref.String())
	}
	v := ref.Version
	if v == "" {
		v = ref.Label
	}
	if v == "" {
		v = registry.LabelLatest
	}
	ev, err := r.reg.ResolveEnvironment(ctx, ref.Name, v)
	if errors.Is(err, store.ErrNotFound) {
		if v == registry.LabelLatest {
			return nil, errorf("environment", "environment %s has no registered version (or all are archived); register one with: plumbline environment create -f env.yml", ref.Name)
		}
		return nil, errorf("environment", "environment %s version %s is not registered; see what is with: plumbline environment list --name %s", ref.Name, v, ref.Name)
	}
	if err != nil {
		return nil, err
	}
	var env spec.Environment
	if err := json.Unmarshal(ev.Spec, &env); err != nil {
		return nil, fmt.Errorf("environment %s:%s: stored document: %w", ev.Name, ev.Version, err)
	}
	pinned, err := spec.ParseEnvironmentRef("azureml:" + ev.Name + ":" + ev.Version)
	if err != nil {
		return nil, err
	}
	d.Environment = &pinned
	p.EnvironmentName, p.EnvironmentVersion = ev.Name, ev.Version
	return env.Defaulted(), nil
}

// finish applies scale, limits and probes, and builds the stored record.
func (r *Resolver) finish(d, dd *spec.Deployment, p *Plan, notices []string) (*Record, error) {
	// Scale, limits, probes.
	p.InstanceCount = 1
	if dd.InstanceCount != nil {
		p.InstanceCount = *dd.InstanceCount
	}
	if ss := dd.ScaleSettings; ss != nil && ss.Type == spec.ScaleTargetUtilization && ss.MinInstances != nil {
		p.InstanceCount = max(*ss.MinInstances, 1)
		notices = append(notices, fmt.Sprintf("scale_settings target_utilization: plumbline runs min_instances (%d); autoscaling is not implemented yet", p.InstanceCount))
	}
	rs := dd.RequestSettings
	p.RequestTimeout = ms(rs.RequestTimeoutMs)
	p.MaxConcurrentPerInstance = *rs.MaxConcurrentRequestsPerInstance
	if d.IsKubernetes() {
		// Kubernetes online deployments still bound the queue wait.
		p.MaxQueueWait = ms(rs.MaxQueueWaitMs)
	} else if d.RequestSettings != nil && d.RequestSettings.MaxQueueWaitMs != nil {
		// Managed deployments: max_queue_wait_ms is deprecated and Azure
		// counts queue time inside request_timeout_ms, so a queued request
		// waits until its request timeout (408), never 429 at 500 ms.
		notices = append(notices, "request_settings.max_queue_wait_ms is deprecated for managed online deployments and ignored: queue time counts inside request_timeout_ms; raise request_timeout_ms instead")
	}
	if p.Lean() {
		notices = append(notices, leanSettings(dd, p)...)
	}
	p.LivenessProbe = probe(dd.LivenessProbe)
	p.ReadinessProbe = probe(dd.ReadinessProbe)
	if d.ReadinessProbe == nil || d.ReadinessProbe.InitialDelay == nil {
		// Local default: probe readiness at once (every 200 ms until the
		// first success) rather than waiting Azure's 10 s.
		p.ReadinessProbe.InitialDelay = 0
	}
	if cpu, mem, ok := spec.InstanceTypeResources(dd.InstanceType); ok {
		p.CPU, p.MemoryBytes = cpu, mem
	}
	if res := dd.Resources; res != nil && res.Limits != nil {
		if res.Limits.CPU != "" {
			if c, err := spec.ParseCPU(res.Limits.CPU); err == nil {
				p.CPU = c
			}
		}
		if res.Limits.Memory != "" {
			if m, err := spec.ParseMemory(res.Limits.Memory); err == nil {
				p.MemoryBytes = m
			}
		}
	}
	if len(dd.EnvironmentVariables) > 0 {
		env := make(map[string]string, len(p.Env)+len(dd.EnvironmentVariables))
		for k, v := range p.Env {
			env[k] = v
		}
		for k, v := range dd.EnvironmentVariables {
			env[k] = v // the user's values win, as on Azure
		}
		p.Env = env
	}

	// The stored document is the one the user gave, with references
	// pinned but without defaults: defaults are shown by Defaulted at read
	// time, and a document read back and sent again (update --set) keeps
	// meaning what the user wrote (an unset probe delay stays unset).
	given := *d
	given.Model = dd.Model
	if dd.Environment != nil && dd.Environment.Inline == nil {
		given.Environment = dd.Environment // a registered environment, pinned
	}
	doc, err := json.Marshal(&given)
	if err != nil {
		return nil, err
	}
	return &Record{Document: doc, Plan: p, Notices: notices}, nil
}

// rSettings passes an R instance what plumbline's R handlers read: the
// endpoint, the deployment and whether R's error messages reach callers
// (the deployment's plumbline.error_detail, else the server's default). The
// user's environment_variables, applied later, win.
func (r *Resolver) rSettings(dd *spec.Deployment, p *Plan) {
	detail := r.ErrorDetail
	if x := dd.Plumbline; x != nil && x.ErrorDetail != nil {
		detail = *x.ErrorDetail
	}
	env := make(map[string]string, len(p.Env)+3)
	for k, v := range p.Env {
		env[k] = v
	}
	env[plumber.EnvEndpoint] = p.Endpoint
	env[plumber.EnvDeployment] = p.Deployment
	env[plumber.EnvErrorDetail] = strconv.FormatBool(detail)
	p.Env = env
}

// runtime decides how instances run, and why (for the event).
func (r *Resolver) runtime(ctx context.Context, d *spec.Deployment, env *spec.Environment, p *Plan) (driver.Runtime, string, error) {
	if x := env.Plumbline; x != nil {
		switch x.Runtime {
		case spec.RuntimePlumber:
			return driver.RuntimePlumber, "environment.plumbline.runtime is plumber", nil
		case spec.RuntimeGeneric:
			return driver.RuntimeGeneric, "environment.plumbline.runtime is generic", nil
		}
		if len(x.Command) > 0 {
			return driver.RuntimeGeneric, "environment.plumbline.command is set", nil
		}
	}
	if strings.EqualFold(path.Ext(p.EntryScript), ".r") {
		return driver.RuntimePlumber, "the scoring script " + p.EntryScript + " is an R plumber file", nil
	}
	if env.Image != "" && plumber.IsPlumberImage(env.Image) {
		return driver.RuntimePlumber, "the image " + env.Image + " is a plumber image", nil
	}
	if p.BuildDigest != "" {
		if dir, err := r.reg.Materialize(ctx, p.BuildDigest); err == nil {
			if df, err := readFile(dir, p.Dockerfile); err == nil {
				if from := plumber.DockerfileFrom(df); from != "" && plumber.IsPlumberImage(from) {
					return driver.RuntimePlumber, "the Dockerfile builds FROM " + from, nil
				}
			}
		}
	}
	return driver.RuntimeImage, "", nil
}

// defaultRoutes are the routes when inference_config is absent.
func defaultRoutes(rt driver.Runtime) (live, ready, score Route) {
	switch rt {
	case driver.RuntimePlumber:
		// plumber serves its OpenAPI document once the API is plumbed.
		return Route{8000, "/openapi.json"}, Route{8000, "/openapi.json"}, Route{8000, "/score"}
	}
	// Azure's inference server: GET / for both probes, /score on 5001.
	return Route{5001, "/"}, Route{5001, "/"}, Route{5001, "/score"}
}

func (r *Resolver) model(ctx context.Context, endpoint, deployment string, ref spec.ModelRef) (store.ModelVersion, error) {
	switch ref.Kind {
	case spec.RefRegistered:
		v := ref.Version
		if v == "" {
			v = ref.Label
		}
		if v == "" {
			v = registry.LabelLatest
		}
		m, err := r.reg.ResolveModel(ctx, ref.Name, v)
		if errors.Is(err, store.ErrNotFound) {
			if v == registry.LabelLatest {
				return m, errorf("model", "model %s has no registered version (or all are archived); register one with: plumbline model create --name %s --path ./models", ref.Name, ref.Name)
			}
			return m, errorf("model", "model %s version %s is not registered; see what is with: plumbline model list --name %s", ref.Name, v, ref.Name)
		}
		return m, err
	case spec.RefDigest:
		return r.register(ctx, "", "", ref.Digest, "", "model")
	case spec.RefInline:
		in := ref.Inline
		if !isDigest(in.Path) {
			return store.ModelVersion{}, notUploaded("model.path", in.Path)
		}
		m, err := r.register(ctx, in.Name, in.Version, in.Path, in.Type, "model.path")
		if err != nil {
			return m, err
		}
		return m, nil
	case spec.RefLocalPath:
		return store.ModelVersion{}, notUploaded("model", ref.Path)
	}
	return store.ModelVersion{}, errorf("model", "model %s: registry models are not supported yet; register the model in this plumbline server (plumbline model create) and refer to it as azureml:<name>:<version>", ref.String())
}

// register registers an inline or anonymous model. A nameless model is named
// after its content (as Azure's anonymous models are); a versionless one
// reuses the newest version with the same content, or gets the next number.
func (r *Resolver) register(ctx context.Context, name, version, digest, typ, field string) (store.ModelVersion, error) {
	if !r.reg.Has(ctx, digest) {
		return store.ModelVersion{}, errorf(field, "artifact %s is not on the server; upload it first", short(digest))
	}
	if name == "" {
		name = "anonymous-" + strings.TrimPrefix(digest, "sha256:")[:12]
		version = "1"
	}
	if version == "" {
		if latest, err := r.reg.ResolveModel(ctx, name, registry.LabelLatest); err == nil && latest.Digest == digest {
			return latest, nil
		}
	}
	if typ == "" {
		typ = spec.ModelTypeCustom
	}
	m, _, err := r.reg.CreateModel(ctx, store.ModelVersion{Name: name, Version: version, Digest: digest, Type: typ})
	if errors.Is(err, store.ErrConflict) {
		return m, errorf(field, "%v", err)
	}
	return m, err
}

func (r *Resolver) manifest(ctx context.Context, field, digest string) (registry.Manifest, error) {
	m, err := r.reg.Manifest(ctx, digest)
	if err != nil {
		if !r.reg.Has(ctx, digest) {
			return m, errorf(field, "artifact %s is not on the server; upload it first", short(digest))
		}
		return m, fmt.Errorf("%s: %w", field, err)
	}
	return m, nil
}

func notUploaded(field, p string) *Error {
	return errorf(field, "%s is a local path the server cannot read; create deployments with the plumbline CLI, which uploads local folders, or upload it (POST /api/v1/artifacts) and give its sha256: digest", p)
}

func isDigest(s string) bool { return strings.HasPrefix(s, "sha256:") && len(s) == len("sha256:")+64 }

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func isFile(m registry.Manifest, p string) bool {
	for _, e := range m.Entries {
		if e.Path == p {
			return e.Type == registry.TypeFile
		}
	}
	return false
}

func isDir(m registry.Manifest, p string) bool {
	for _, e := range m.Entries {
		if e.Path == p {
			return e.Type == registry.TypeDir
		}
	}
	return false
}

func listFiles(m registry.Manifest, root string, n int) string {
	var out []string
	for _, e := range m.Entries {
		if e.Type == registry.TypeFile && strings.HasPrefix(e.Path, root+"/") {
			out = append(out, strings.TrimPrefix(e.Path, root+"/"))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "no files"
	}
	if len(out) > n {
		out = append(out[:n], "…")
	}
	return strings.Join(out, ", ")
}

func ms(v *int) time.Duration {
	if v == nil {
		return 0
	}
	return time.Duration(*v) * time.Millisecond
}

func probe(ps *spec.ProbeSettings) Probe {
	sec := func(v *int) time.Duration {
		if v == nil {
			return 0
		}
		return time.Duration(*v) * time.Second
	}
	iv := func(v *int) int {
		if v == nil {
			return 0
		}
		return *v
	}
	return Probe{
		InitialDelay: sec(ps.InitialDelay), Period: sec(ps.Period), Timeout: sec(ps.Timeout),
		SuccessThreshold: iv(ps.SuccessThreshold), FailureThreshold: iv(ps.FailureThreshold),
	}
}
