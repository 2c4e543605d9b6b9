package resolve_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
)

type fixture struct {
	t   *testing.T
	reg *registry.Registry
	res *resolve.Resolver
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	blobs, err := blob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(st, blobs, filepath.Join(dir, "cache"), registry.Limits{})
	return &fixture{t: t, reg: reg, res: resolve.New(reg)}
}

// upload writes files under a folder named base and ingests it.
func (f *fixture) upload(base string, files map[string]string) string {
	f.t.Helper()
	root := filepath.Join(f.t.TempDir(), base)
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := registry.WriteTar(context.Background(), &buf, root, nil); err != nil {
		f.t.Fatal(err)
	}
	a, err := f.reg.Ingest(context.Background(), &buf, registry.Limits{})
	if err != nil {
		f.t.Fatal(err)
	}
	return a.Digest
}

func (f *fixture) resolve(doc string) (*resolve.Record, error) {
	f.t.Helper()
	d, err := spec.Parse("deployment.yml", []byte(doc), spec.ParseOptions{Expect: spec.KindDeployment})
	if err != nil {
		f.t.Fatalf("Parse: %v", err)
	}
	if err := d.Deployment.Validate(); err != nil {
		f.t.Fatalf("Validate: %v", err)
	}
	return f.res.Resolve(context.Background(), "ep", d.Deployment)
}

const base = "name: blue\nendpoint_name: my-ep\ninstance_type: Standard_DS2_v2\ninstance_count: 2\n"

func TestRuntimeAndRoutes(t *testing.T) {
	f := newFixture(t)
	rcode := f.upload("src", map[string]string{"plumber.R": "#* @get /live\nfunction() 1\n"})
	pycode := f.upload("src", map[string]string{"score.py": "print(1)\n"})
	ctx := f.upload("docker-context", map[string]string{"Dockerfile": "FROM rstudio/plumber:latest\n"})
	routes := "  inference_config:\n    liveness_route: {port: 8000, path: /live}\n    readiness_route: {port: 8000, path: /ready}\n    scoring_route: {port: 8000, path: /predict}\n"
	tests := []struct {
		name        string
		doc         string
		wantRuntime driver.Runtime
		wantScore   string
		wantReady   string
		wantNotice  string
	}{
		{"R scoring script", base + "code_configuration: {code: " + rcode + ", scoring_script: plumber.R}\nenvironment:\n  image: myacr.azurecr.io/r:1\n" + routes,
			driver.RuntimePlumber, "/predict", "/ready", "is not needed locally"},
		{"plumber build context, no routes", base + "code_configuration: {code: " + rcode + ", scoring_script: plumber.R}\nenvironment:\n  build: {path: " + ctx + "}\n",
			driver.RuntimePlumber, "/score", "/.plumbline/ready", "the image built from docker-context/Dockerfile is not needed locally; plumber.R runs on plumbline's lean R runtime"},
		{"generic command", base + "code_configuration: {code: " + pycode + ", scoring_script: score.py}\nenvironment:\n  plumbline:\n    command: [python3, '{code_dir}/score.py', '{port}']\n" + routes,
			driver.RuntimeGeneric, "/predict", "/ready", ""},
		{"python image needs a container driver", base + "code_configuration: {code: " + pycode + ", scoring_script: score.py}\nenvironment:\n  image: python:3.11\n",
			driver.RuntimeImage, "/score", "/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := f.resolve(tt.doc)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			p := rec.Plan
			if p.Runtime != tt.wantRuntime || p.Scoring.Path != tt.wantScore || p.Readiness.Path != tt.wantReady {
				t.Errorf("got runtime %s scoring %s readiness %s, want %s %s %s", p.Runtime, p.Scoring.Path, p.Readiness.Path, tt.wantRuntime, tt.wantScore, tt.wantReady)
			}
			if p.InstanceCount != 2 || p.CodeRoot != "src" {
				t.Errorf("got instance count %d, code root %q; want 2, src", p.InstanceCount, p.CodeRoot)
			}
			notices := strings.Join(rec.Notices, "\n")
			if !strings.Contains(notices, tt.wantNotice) {
				t.Errorf("got notices %q, want one containing %q", notices, tt.wantNotice)
			}
		})
	}
}

// TestMaxQueueWait: max_queue_wait_ms is deprecated for managed online
// deployments (ignored, with a notice); Kubernetes ones still use it.
func TestMaxQueueWait(t *testing.T) {
	f := newFixture(t)
	code := f.upload("src", map[string]string{"plumber.R": "x"})
	doc := base + "code_configuration: {code: " + code + ", scoring_script: plumber.R}\nenvironment: {image: rstudio/plumber}\nrequest_settings: {request_timeout_ms: 3000, max_queue_wait_ms: 3000}\n"
	rec, err := f.resolve(doc)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Plan.MaxQueueWait != 0 || rec.Plan.RequestTimeout != 3*time.Second {
		t.Errorf("managed: queue wait %v, timeout %v; want 0 (no separate bound) and 3s", rec.Plan.MaxQueueWait, rec.Plan.RequestTimeout)
	}
	if !strings.Contains(strings.Join(rec.Notices, "\n"), "max_queue_wait_ms is deprecated") {
		t.Errorf("managed: notices %q lack the deprecation", rec.Notices)
	}
	rec, err = f.resolve("type: kubernetes\n" + doc)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Plan.MaxQueueWait != 3*time.Second {
		t.Errorf("kubernetes: queue wait %v, want 3s", rec.Plan.MaxQueueWait)
	}
}

func TestDefaultsAndProbes(t *testing.T) {
	f := newFixture(t)
	code := f.upload("src", map[string]string{"plumber.R": "x"})
	rec, err := f.resolve(base + "code_configuration: {code: " + code + ", scoring_script: plumber.R}\nenvironment: {image: rstudio/plumber}\n")
	if err != nil {
		t.Fatal(err)
	}
	p := rec.Plan
	want := resolve.Probe{Period: 10 * time.Second, Timeout: 2 * time.Second, SuccessThreshold: 1, FailureThreshold: 30}
	if p.ReadinessProbe != want {
		t.Errorf("readiness without initial_delay: got %+v, want %+v (probe at once locally)", p.ReadinessProbe, want)
	}
	want.InitialDelay = 10 * time.Second
	if p.LivenessProbe != want {
		t.Errorf("liveness: got %+v, want Azure's defaults %+v", p.LivenessProbe, want)
	}
	// Managed deployments: no separate queue bound; queue time counts
	// inside request_timeout_ms, as on Azure.
	if p.RequestTimeout != 5*time.Second || p.MaxConcurrentPerInstance != 1 || p.MaxQueueWait != 0 {
		t.Errorf("request settings: got %v %d %v, want 5s 1 0s", p.RequestTimeout, p.MaxConcurrentPerInstance, p.MaxQueueWait)
	}
	if p.CPU != 2 || p.MemoryBytes == 0 {
		t.Errorf("Standard_DS2_v2: got cpu %v memory %d, want 2 cores and a memory size", p.CPU, p.MemoryBytes)
	}
	rec, err = f.resolve(base + "code_configuration: {code: " + code + ", scoring_script: plumber.R}\nenvironment: {image: rstudio/plumber}\nreadiness_probe: {initial_delay: 7}\n")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Plan.ReadinessProbe.InitialDelay != 7*time.Second {
		t.Errorf("explicit initial_delay: got %v, want 7s", rec.Plan.ReadinessProbe.InitialDelay)
	}
}

func TestModelReferences(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	code := f.upload("src", map[string]string{"plumber.R": "x"})
	m1 := f.upload("models", map[string]string{"crate.bin": "one"})
	m2 := f.upload("models", map[string]string{"crate.bin": "two"})
	for _, d := range []string{m1, m2} {
		if _, _, err := f.reg.CreateModel(ctx, store.ModelVersion{Name: "iris", Digest: d}); err != nil {
			t.Fatal(err)
		}
	}
	env := "code_configuration: {code: " + code + ", scoring_script: plumber.R}\nenvironment: {image: rstudio/plumber}\n"
	tests := []struct {
		name, model, wantName, wantVersion, wantPinned string
	}{
		{"latest pins the newest", "azureml:iris@latest", "iris", "2", "azureml:iris:2"},
		{"a version", "azureml:iris:1", "iris", "1", "azureml:iris:1"},
		{"inline with name and version", "{name: rplumber, version: 1, path: " + m1 + "}", "rplumber", "1", "azureml:rplumber:1"},
		{"inline without version reuses identical latest", "{name: iris, path: " + m2 + "}", "iris", "2", "azureml:iris:2"},
		{"an uploaded path is an anonymous model", m1, "anonymous-" + strings.TrimPrefix(m1, "sha256:")[:12], "1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := f.resolve(base + "model: " + tt.model + "\n" + env)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			p := rec.Plan
			if p.ModelName != tt.wantName || p.ModelVersion != tt.wantVersion || p.ModelPath != "models" {
				t.Errorf("got %s:%s path %s, want %s:%s path models", p.ModelName, p.ModelVersion, p.ModelPath, tt.wantName, tt.wantVersion)
			}
			if tt.wantPinned != "" && !strings.Contains(string(rec.Document), `"model":"`+tt.wantPinned+`"`) {
				t.Errorf("document does not pin %s: %s", tt.wantPinned, rec.Document)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	f := newFixture(t)
	code := f.upload("src", map[string]string{"plumber.R": "x", "helpers.R": "y"})
	env := "environment: {image: rstudio/plumber}\n"
	tests := []struct{ name, doc, want string }{
		{"script not in code", base + "code_configuration: {code: " + code + ", scoring_script: score.R}\n" + env,
			"code_configuration.scoring_script: scoring script score.R is not in the code folder src (it holds: helpers.R, plumber.R)"},
		{"local path not uploaded", base + "code_configuration: {code: /home/me/src, scoring_script: plumber.R}\n" + env,
			"code_configuration.code: /home/me/src is a local path the server cannot read"},
		{"unregistered model", base + "model: azureml:nope@latest\ncode_configuration: {code: " + code + ", scoring_script: plumber.R}\n" + env,
			"model: model nope has no registered version (or all are archived); register one with: plumbline model create --name nope --path ./models"},
		{"registered environment", base + "code_configuration: {code: " + code + ", scoring_script: plumber.R}\nenvironment: azureml:my-env:1\n",
			"environment: environment my-env version 1 is not registered; see what is with: plumbline environment list --name my-env"},
		{"curated environment", base + "environment: azureml://registries/azureml/environments/sklearn-1.5/versions/3\n",
			"is an environment of the Azure registry azureml, which is not available here"},
		{"generic without command", base + "environment:\n  image: x\n  plumbline: {runtime: generic}\n",
			"environment.plumbline.command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := spec.Parse("deployment.yml", []byte(tt.doc), spec.ParseOptions{Expect: spec.KindDeployment})
			if err == nil {
				err = d.Deployment.Validate()
			}
			if err == nil {
				_, err = f.res.Resolve(context.Background(), "ep", d.Deployment)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRCheckerWithRealR(t *testing.T) {
	if testing.Short() {
		t.Skip("starts R")
	}
	if _, err := exec.LookPath("Rscript"); err != nil {
		t.Skip("Rscript is not installed (apt-get install r-base-core r-cran-plumber)")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "plumber.R"), []byte("# library(carrier) only in a comment\nlibrary(jsonlite)\nx <- notapkg123::f\n"), 0o644)
	c := &resolve.RChecker{}
	_, err := c.Check(context.Background(), &resolve.Plan{Runtime: driver.RuntimePlumber, EntryScript: "plumber.R"}, dir)
	// No r-cran-notapkg123 is invented: apt-cache says it does not exist.
	want := "ResourceNotReady: R packages used by plumber.R are not installed: notapkg123; install them with: in R (not packaged for Debian): install.packages(\"notapkg123\"); or run the deployment in a container that has them: plumbline serve --driver docker builds its environment's Dockerfile"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	c = &resolve.RChecker{Rscript: "/nonexistent/Rscript"}
	if _, err := c.Check(context.Background(), &resolve.Plan{Runtime: driver.RuntimePlumber, EntryScript: "plumber.R"}, dir); err == nil || !strings.Contains(err.Error(), "R is not installed") {
		t.Errorf("missing Rscript: got %v", err)
	}
}

// TestRRuntime: an R plumber deployment runs on the lean R runtime unless
// its script uses what only plumber's own server serves, or the deployment
// says otherwise; the notice (the deployment's event) says which and why.
func TestRRuntime(t *testing.T) {
	f := newFixture(t)
	plain := f.upload("src", map[string]string{"plumber.R": "#* @get /live\nfunction() 1\n"})
	async := f.upload("src", map[string]string{"plumber.R": "library(promises)\n#* @get /live\nfunction() 1\n"})
	env := "environment:\n  image: rstudio/plumber\n  inference_config:\n    liveness_route: {port: 8000, path: /live}\n    readiness_route: {port: 8000, path: /ready}\n    scoring_route: {port: 8000, path: /score}\n"
	doc := func(code, extra string) string {
		return base + "code_configuration: {code: " + code + ", scoring_script: plumber.R}\n" + env + extra
	}
	tests := []struct {
		name       string
		doc        string
		want       string
		workers    int
		wantNotice string
	}{
		{"lean by default", doc(plain, ""), "lean", 1, "R runtime: lean (plumbline's R workers): plumber.R is loaded once"},
		{"workers follow max_concurrent", doc(plain, "request_settings: {max_concurrent_requests_per_instance: 4}\n"), "lean", 4, "R runtime: lean"},
		{"workers capped", doc(plain, "request_settings: {max_concurrent_requests_per_instance: 100}\n"), "lean", 32, "the lean R runtime runs 32 R workers per instance"},
		{"workers from the extension", doc(plain, "plumbline: {workers: 3, max_requests_per_worker: 500, max_worker_memory: 1Gi}\n"), "lean", 3, "plumbline.workers is 3 and max_concurrent_requests_per_instance 1"},
		{"async falls back", doc(async, ""), "plumber", 0, "R runtime: plumber's own server, because plumber.R line 1 loads promises: asynchronous endpoints need plumber's own event loop, which the lean runtime cannot serve"},
		{"forced plumber", doc(plain, "plumbline: {r_runtime: plumber}\n"), "plumber", 0, "R runtime: plumber's own server, as plumbline.r_runtime says"},
		{"forced lean", doc(async, "plumbline: {r_runtime: lean}\n"), "lean", 1, "R runtime: lean, as plumbline.r_runtime says, although plumber.R line 1 loads promises"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := f.resolve(tt.doc)
			if err != nil {
				t.Fatal(err)
			}
			p := rec.Plan
			if p.RRuntime != tt.want || p.Workers != tt.workers {
				t.Errorf("got r_runtime %q with %d workers, want %q with %d", p.RRuntime, p.Workers, tt.want, tt.workers)
			}
			if notices := strings.Join(rec.Notices, "\n"); !strings.Contains(notices, tt.wantNotice) {
				t.Errorf("notices %q, want one containing %q", notices, tt.wantNotice)
			}
			rw := p.RWorkers()
			if (rw != nil) != (tt.want == "lean") {
				t.Fatalf("RWorkers %+v for r_runtime %s", rw, tt.want)
			}
			if rw != nil && (rw.Workers != tt.workers || rw.LivenessPath != "/live" || rw.ReadinessPath != "/ready" || rw.RequestTimeout != 5*time.Second) {
				t.Errorf("RWorkers %+v: want %d workers, the deployment's probe routes and its request timeout", rw, tt.workers)
			}
		})
	}
	ext, err := f.resolve(doc(plain, "plumbline: {workers: 3, max_requests_per_worker: 500, max_worker_memory: 1Gi}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rw := ext.Plan.RWorkers(); rw.MaxRequests != 500 || rw.MaxMemoryBytes != 1<<30 {
		t.Errorf("recycling settings %+v, want 500 requests and 1 GiB", rw)
	}
}

// TestTemplateHashLean: the lean runtime's settings restart lean instances
// (they are started with them); plans without the lean runtime hash as
// before it existed.
func TestTemplateHashLean(t *testing.T) {
	p := resolve.Plan{Runtime: driver.RuntimePlumber, EntryScript: "plumber.R", RequestTimeout: 5 * time.Second, MaxConcurrentPerInstance: 1}
	old := p.TemplateHash()
	p.MaxConcurrentPerInstance = 2
	if p.TemplateHash() != old {
		t.Errorf("a request setting changed the hash of a plan without the lean runtime")
	}
	p.RRuntime = "lean"
	p.Workers = 1
	lean := p.TemplateHash()
	if lean == old {
		t.Errorf("choosing the lean runtime kept the hash")
	}
	p.Workers = 2
	if p.TemplateHash() == lean {
		t.Errorf("more workers kept the hash of a lean plan")
	}
	p.Workers = 1
	p.RequestTimeout = time.Second
	if p.TemplateHash() == lean {
		t.Errorf("another request timeout kept the hash of a lean plan")
	}
}
