package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// noCodeModels builds the no-code test models once (real R objects; see
// testdata/nocode/make_models.R) and returns their folder.
var noCodeModels struct {
	once sync.Once
	dir  string
	err  string
}

func nocodeModels(t *testing.T) string {
	t.Helper()
	requireR(t, "plumber", "jsonlite", "randomForest")
	noCodeModels.once.Do(func() {
		dir, err := os.MkdirTemp("", "plumbline-e2e-nocode-")
		if err != nil {
			noCodeModels.err = err.Error()
			return
		}
		out, err := exec.Command(rCheck.rscript, filepath.Join("testdata", "nocode", "make_models.R"), dir).CombinedOutput()
		if err != nil {
			noCodeModels.err = err.Error() + ": " + string(out)
			return
		}
		noCodeModels.dir = dir
	})
	if noCodeModels.err != "" {
		t.Fatalf("make_models.R: %s", noCodeModels.err)
	}
	return noCodeModels.dir
}

const irisColumns = `{"sepal_length":[6.7],"sepal_width":[3.3],"petal_length":[5.7],"petal_width":[2.5]}`

// TestNoCodeDeployments deploys, with no scoring script and no
// environment, an MLflow crate model registered by name, a vetiver pin, a
// randomForest and an lm saved as .rds, and scores each; checks the pin's
// prototype is enforced at the gateway (a request missing a column gets 422
// naming it and the model never sees it); and that a python_function model
// and a triton_model fail at once with a reason that says what to do,
// leaving no process behind.
func TestNoCodeDeployments(t *testing.T) {
	models := nocodeModels(t)
	dir := t.TempDir()
	copyTree(t, models, dir)
	dd := newDataDir(t)
	s := startServer(t, dd)
	s.must(t, "online-endpoint", "create", "--name", "no-code", "--auth-mode", "key")
	deploy := func(t *testing.T, name, yml string) (result, deploymentView) {
		t.Helper()
		writeFile(t, filepath.Join(dir, name+".yml"), "name: "+name+"\nendpoint_name: no-code\ninstance_type: Standard_DS2_v2\ninstance_count: 1\n"+yml)
		r := s.cliIn(t, dir, "online-deployment", "create", "-f", name+".yml")
		return r, s.deployment(t, "no-code", name)
	}
	c := s.httpClient(t)
	uri := s.endpoint(t, "no-code").ScoringURI
	key := s.keys(t, "no-code").PrimaryKey

	t.Run("mlflow crate by name", func(t *testing.T) {
		m := s.mustIn(t, dir, "model", "create", "--name", "iris-mlflow", "--path", "mlflow-crate", "--type", "mlflow_model", "-o", "json")
		if !strings.Contains(m.stdout, `"type": "mlflow_model"`) {
			t.Errorf("model create --type mlflow_model: type not shown:\n%s", m.stdout)
		}
		r, d := deploy(t, "mlflow-crate", "model: azureml:iris-mlflow:1\n")
		if r.code != 0 || d.ProvisioningState != "Succeeded" || d.Runtime != "plumber" {
			t.Fatalf("create: %s\n%s", d, r)
		}
		got := score(t, c, uri, key, "mlflow-crate", irisColumns)
		if got.status != 200 || got.body != `["virginica"]` {
			t.Errorf("score the seed's sample request: got %d %s, want 200 [\"virginica\"]", got.status, got.body)
		}
		split := `{"dataframe_split":{"columns":["sepal_length","sepal_width","petal_length","petal_width"],"data":[[6.7,3.3,5.7,2.5],[5.1,3.5,1.4,0.2]]}}`
		if got := score(t, c, uri, key, "mlflow-crate", split); got.status != 200 || got.body != `["virginica","setosa"]` {
			t.Errorf("dataframe_split: got %d %s", got.status, got.body)
		}
		records := `{"dataframe_records":[{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}]}`
		if got := score(t, c, uri, key, "mlflow-crate", records); got.status != 200 || got.body != `["setosa"]` {
			t.Errorf("dataframe_records: got %d %s", got.status, got.body)
		}
	})

	t.Run("vetiver pin", func(t *testing.T) {
		r, d := deploy(t, "vetiver-pin", "model:\n  path: ./board/iris-rf\nplumbline:\n  scorer: builtin\n")
		if r.code != 0 || d.ProvisioningState != "Succeeded" {
			t.Fatalf("create: %s\n%s", d, r)
		}
		row := `[{"Sepal.Length":6.7,"Sepal.Width":3.3,"Petal.Length":5.7,"Petal.Width":2.5}]`
		if got := score(t, c, uri, key, "vetiver-pin", row); got.status != 200 || got.body != `{".pred":["virginica"]}` {
			t.Errorf("score: got %d %s", got.status, got.body)
		}
		proto := get(t, c, strings.TrimSuffix(uri, "/score")+"/prototype", key, "vetiver-pin")
		if proto.status != 200 || !strings.Contains(proto.body, `"Petal.Width":{"type":"numeric"`) {
			t.Errorf("GET /endpoints/no-code/prototype: got %d %s", proto.status, proto.body)
		}
		before := metricValue(s.metrics(t, c), "plumbline_requests_total", `deployment="vetiver-pin"`, `code="200"`)
		bad := score(t, c, uri, key, "vetiver-pin", `[{"Sepal.Length":6.7,"Sepal.Width":"wide","Petal.Length":5.7}]`)
		if bad.status != 422 || !strings.Contains(bad.body, "missing column Petal.Width") || !strings.Contains(bad.body, `Sepal.Width[0]: expected a number, got \"wide\"`) {
			t.Errorf("missing column: got %d %s, want 422 naming Petal.Width and Sepal.Width[0]", bad.status, bad.body)
		}
		text := s.metrics(t, c)
		if n := metricValue(text, "plumbline_requests_total", `deployment="vetiver-pin"`, `code="422"`, `model_code=""`); n != 1 {
			t.Errorf("422s that the model never answered (model_code empty): got %v, want 1", n)
		}
		if after := metricValue(text, "plumbline_requests_total", `deployment="vetiver-pin"`, `code="200"`); after != before {
			t.Errorf("the model answered %v requests during the 422, want none", after-before)
		}
	})

	t.Run("randomForest rds", func(t *testing.T) {
		r, d := deploy(t, "rf-rds", "model: ./rf.rds\nplumbline:\n  scorer: builtin\n")
		if r.code != 0 || d.ProvisioningState != "Succeeded" {
			t.Fatalf("create: %s\n%s", d, r)
		}
		got := score(t, c, uri, key, "rf-rds", `{"Sepal.Length":[6.7,5.1],"Sepal.Width":[3.3,3.5],"Petal.Length":[5.7,1.4],"Petal.Width":[2.5,0.2]}`)
		if got.status != 200 || got.body != `{".pred":["virginica","setosa"]}` {
			t.Errorf("score: got %d %s", got.status, got.body)
		}
		meta := get(t, c, strings.TrimSuffix(uri, "/score")+"/swagger.json", key, "rf-rds")
		if meta.status != 200 || !strings.Contains(meta.body, "/predict") {
			t.Errorf("swagger.json of the built-in scorer: got %d %.200s", meta.status, meta.body)
		}
	})

	t.Run("lm rds", func(t *testing.T) {
		r, d := deploy(t, "lm-rds", "model: ./lm.rds\nplumbline:\n  scorer: builtin\n")
		if r.code != 0 || d.ProvisioningState != "Succeeded" {
			t.Fatalf("create: %s\n%s", d, r)
		}
		got := score(t, c, uri, key, "lm-rds", `[{"cyl":6,"disp":160},{"cyl":4,"disp":108}]`)
		if got.status != 200 || !strings.HasPrefix(got.body, `{".pred":[21.84`) {
			t.Errorf("score: got %d %s, want lm's predictions (21.84…, 26.09…)", got.status, got.body)
		}
	})

	t.Run("model create --prototype", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "cars.prototype.json"), `{"cyl": "numeric", "disp": {"type": "numeric"}}`)
		m := s.mustIn(t, dir, "model", "create", "--name", "cars-lm", "--path", "lm.rds", "--prototype", "cars.prototype.json", "-o", "json")
		if !strings.Contains(m.stdout, `"input_contract"`) {
			t.Errorf("model create --prototype: the contract is not shown:\n%s", m.stdout)
		}
		r, d := deploy(t, "cars-lm", "model: azureml:cars-lm:1\nplumbline:\n  scorer: builtin\n")
		if r.code != 0 || d.ProvisioningState != "Succeeded" {
			t.Fatalf("create: %s\n%s", d, r)
		}
		bad := score(t, c, uri, key, "cars-lm", `[{"cyl":6,"disp":160,"wheels":4}]`)
		if bad.status != 422 || !strings.Contains(bad.body, "unexpected column wheels") {
			t.Errorf("extra column: got %d %s, want 422 naming wheels", bad.status, bad.body)
		}
		if got := score(t, c, uri, key, "cars-lm", `[{"cyl":6,"disp":160}]`); got.status != 200 {
			t.Errorf("valid: got %d %s", got.status, got.body)
		}
	})

	t.Run("python_function without mlflow", func(t *testing.T) {
		if err := exec.Command("python3", "-c", "import mlflow").Run(); err == nil {
			t.Skip("this machine's python3 imports mlflow; the failure path cannot be shown")
		}
		r, d := deploy(t, "pyfunc", "model:\n  path: ./mlflow-python\n  type: mlflow_model\n")
		if r.code != 1 || d.ProvisioningState != "Failed" || !strings.Contains(d.Reason, "cannot import mlflow") || !strings.Contains(d.Reason, "pip install mlflow") {
			t.Errorf("want Failed saying what to install, got %s\n%s", d, r)
		}
		if len(d.Instances) != 0 {
			t.Errorf("instances of a deployment that failed its check: %v", d.Instances)
		}
	})

	t.Run("triton without image", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "tri", "models", "densenet", "config.pbtxt"), "name: \"densenet\"\n")
		r, d := deploy(t, "triton", "model:\n  path: ./tri/models\n  type: triton_model\n")
		if r.code != 1 || d.ProvisioningState != "Failed" || !strings.Contains(d.Reason, "container driver") || !strings.Contains(d.Reason, "environment.image") {
			t.Errorf("want Failed pointing at the container driver and an image, got %s\n%s", d, r)
		}
	})

	t.Run("custom model without environment", func(t *testing.T) {
		s.mustIn(t, dir, "model", "create", "--name", "plain-rds", "--path", "lm.rds")
		writeFile(t, filepath.Join(dir, "plain.yml"), "name: plain\nendpoint_name: no-code\ninstance_type: Standard_DS2_v2\ninstance_count: 1\nmodel: azureml:plain-rds:1\n")
		r := s.cliIn(t, dir, "online-deployment", "create", "-f", "plain.yml")
		if r.code == 0 || !strings.Contains(r.stderr, "missing; set an environment: azureml:<name>:<version>, or inline with image and inference_config") || !strings.Contains(r.stderr, "plumbline.scorer: builtin") {
			t.Errorf("want the environment-missing refusal with a hint, got\n%s", r)
		}
	})
}

// get sends a GET with a bearer secret and a deployment header.
func get(t *testing.T, c interface {
	Do(*http.Request) (*http.Response, error)
}, url, secret, deployment string) reply {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	if deployment != "" {
		req.Header.Set("azureml-model-deployment", deployment)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, deployment: res.Header.Get("azureml-model-deployment"), body: string(b)}
}

// TestUpBareModel: `plumbline up` on a folder holding only an MLmodel and
// crate.bin (plus the seed's sample request) deploys it with no YAML and
// answers the sample; on an .rds with --infer-prototype, the sample's
// columns become the contract.
func TestUpBareModel(t *testing.T) {
	models := nocodeModels(t)
	dd := newDataDir(t)
	s := startServer(t, dd)
	dir := filepath.Join(t.TempDir(), "iris-mlflow")
	copyTree(t, filepath.Join(models, "mlflow-crate"), dir)
	writeFile(t, filepath.Join(dir, "sample_request.json"), irisColumns)
	r := s.mustIn(t, filepath.Dir(dir), "up", "iris-mlflow")
	if got := strings.TrimSpace(r.stdout); got != `["virginica"]` {
		t.Errorf("up on MLmodel + crate.bin: printed %q, want [\"virginica\"]\n%s", got, r.stderr)
	}
	for _, want := range []string{"Endpoint iris-mlflow is live", "Scoring URI:", "curl"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("up did not print %q:\n%s", want, r.stderr)
		}
	}

	lm := t.TempDir()
	b, err := os.ReadFile(filepath.Join(models, "lm.rds"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lm, "cars-lm.rds"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(lm, "sample_request.json"), `[{"cyl":6,"disp":160}]`)
	r = s.mustIn(t, lm, "up", "cars-lm.rds", "--infer-prototype")
	if got := strings.TrimSpace(r.stdout); !strings.HasPrefix(got, `{".pred":[21.84`) {
		t.Errorf("up cars-lm.rds: printed %q\n%s", got, r.stderr)
	}
	c := s.httpClient(t)
	uri := s.endpoint(t, "cars-lm").ScoringURI
	bad := score(t, c, uri, s.keys(t, "cars-lm").PrimaryKey, "", `[{"cyl":6}]`)
	if bad.status != 422 || !strings.Contains(bad.body, "missing column disp") {
		t.Errorf("inferred contract: got %d %s, want 422 missing column disp", bad.status, bad.body)
	}
}
