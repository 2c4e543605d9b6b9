package resolve_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/plumbline/plumbline/internal/container"
	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// registerEnv registers an environment document (JSON) as name:version.
func (f *fixture) registerEnv(doc string, artifacts ...string) store.EnvironmentVersion {
	f.t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		f.t.Fatal(err)
	}
	ev, _, err := f.reg.CreateEnvironment(context.Background(), store.EnvironmentVersion{
		Name: m["name"].(string), Version: m["version"].(string), Spec: json.RawMessage(doc),
	}, artifacts)
	if err != nil {
		f.t.Fatal(err)
	}
	return ev
}

// TestRegisteredEnvironment: azureml:<name>:<version> and @latest resolve
// to the registered document, pinned in the stored document and the plan.
func TestRegisteredEnvironment(t *testing.T) {
	f := newFixture(t)
	code := f.upload("src", map[string]string{"score.py": "# scoring\n"})
	f.registerEnv(`{"name":"py-env","version":"1","image":"python:3.12-slim",
		"inference_config":{"liveness_route":{"port":5001,"path":"/health"},"readiness_route":{"port":5001,"path":"/health"},"scoring_route":{"port":5001,"path":"/predict"}}}`)
	f.registerEnv(`{"name":"py-env","version":"2","image":"python:3.13-slim",
		"inference_config":{"liveness_route":{"port":5001,"path":"/health"},"readiness_route":{"port":5001,"path":"/health"},"scoring_route":{"port":5001,"path":"/predict"}}}`)
	for _, tt := range []struct{ ref, image, version string }{
		{"azureml:py-env:1", "python:3.12-slim", "1"},
		{"azureml:py-env@latest", "python:3.13-slim", "2"},
	} {
		t.Run(tt.ref, func(t *testing.T) {
			f.res = resolve.ForContainers(f.reg)
			rec, err := f.resolve(base + "code_configuration: {code: " + code + ", scoring_script: score.py}\nenvironment: " + tt.ref + "\n")
			if err != nil {
				t.Fatal(err)
			}
			p := rec.Plan
			if p.Image != tt.image || p.Runtime != driver.RuntimeImage || p.Scoring.Path != "/predict" || p.Scoring.Port != 5001 {
				t.Errorf("plan = image %q runtime %s scoring %+v, want %s, image, 5001 /predict", p.Image, p.Runtime, p.Scoring, tt.image)
			}
			if p.EnvironmentName != "py-env" || p.EnvironmentVersion != tt.version {
				t.Errorf("plan environment = %s:%s, want py-env:%s", p.EnvironmentName, p.EnvironmentVersion, tt.version)
			}
			if want := `"environment":"azureml:py-env:` + tt.version + `"`; !strings.Contains(string(rec.Document), want) {
				t.Errorf("stored document %s lacks the pinned %s", rec.Document, want)
			}
		})
	}
}

// TestContainerPlans: under a container driver an image runs its own
// command (the seed's start_plumber.R), a build context becomes an image
// tagged by its digest, a plumber image gets plumber's port and probes, and
// an environment without an image is refused with what to do.
func TestContainerPlans(t *testing.T) {
	f := newFixture(t)
	f.res = resolve.ForContainers(f.reg)
	code := f.upload("src", map[string]string{"plumber.R": "#* @get /live\nfunction() 'alive'\n"})
	ctxDigest := f.upload("docker-context", map[string]string{
		"Dockerfile":      "FROM rstudio/plumber:latest\nENTRYPOINT []\nCOPY start_plumber.R /tmp/start_plumber.R\nCMD [\"Rscript\", \"/tmp/start_plumber.R\"]\n",
		"start_plumber.R": "pr <- plumber::plumb('x')\n",
	})
	withCode := base + "code_configuration: {code: " + code + ", scoring_script: plumber.R}\n"

	rec, err := f.resolve(withCode + "environment:\n  build: {path: " + ctxDigest + "}\n")
	if err != nil {
		t.Fatal(err)
	}
	p := rec.Plan
	if want := container.BuildTag(ctxDigest, "docker-context/Dockerfile"); p.Image != want || p.BuildDigest != ctxDigest {
		t.Errorf("built plan image %q build %q, want %q from %s", p.Image, p.BuildDigest, want, ctxDigest)
	}
	if p.Runtime != driver.RuntimeImage || p.Scoring.Port != 8000 || p.Readiness.Path != "/openapi.json" {
		t.Errorf("plan runtime %s scoring %+v readiness %+v, want image on plumber's 8000 with /openapi.json probes", p.Runtime, p.Scoring, p.Readiness)
	}

	rec, err = f.resolve(withCode + "environment: {image: rstudio/plumber:latest, plumbline: {runtime: plumber}}\n")
	if err != nil || rec.Plan.Runtime != driver.RuntimePlumber {
		t.Errorf("plumbline.runtime plumber in an image = %+v, %v; want the plumber runtime", rec, err)
	}

	_, err = f.resolve(base + "environment: {plumbline: {command: [python3, serve.py]}}\n")
	if err == nil || !strings.Contains(err.Error(), "the docker driver runs container images") {
		t.Errorf("a command without an image = %v, want the docker driver's refusal", err)
	}

	// The same files under the process driver keep running on this host.
	f.res = resolve.New(f.reg)
	rec, err = f.resolve(withCode + "environment:\n  build: {path: " + ctxDigest + "}\n")
	if err != nil || rec.Plan.Runtime != driver.RuntimePlumber || rec.Plan.Image != "" {
		t.Errorf("process driver plan = %+v, %v; want the plumber runtime and no image", rec.Plan, err)
	}
}
