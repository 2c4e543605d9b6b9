package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// envClassifier makes the test binary a scoring server: the safe-rollout
// tests deploy the binary itself (a generic runtime command), so they need
// neither R nor Python where R is not the subject.
const envClassifier = "PLUMBLINE_E2E_CLASSIFIER"

// classifier serves /live, /ready and /score on 127.0.0.1:$PORT: each row
// [x, …] of {"data": [[…], …]} gets the class x mod 3 of setosa,
// versicolor, virginica. The model (model.json under AZUREML_MODEL_DIR)
// may flip every flip_every-th prediction it makes to the next class, a
// known disagreement rate. While the file $FAIL_FILE exists, every request
// gets 500.
func classifier() int {
	var model struct {
		FlipEvery int64 `json:"flip_every"`
	}
	matches, _ := filepath.Glob(filepath.Join(os.Getenv("AZUREML_MODEL_DIR"), "*", "model.json"))
	if len(matches) != 1 {
		fmt.Println("classifier: no model.json under", os.Getenv("AZUREML_MODEL_DIR"))
		return 1
	}
	b, err := os.ReadFile(matches[0])
	if err == nil {
		err = json.Unmarshal(b, &model)
	}
	if err != nil {
		fmt.Println("classifier: bad model:", err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Println("classifier:", err)
		return 1
	}
	fmt.Printf("classifier: flipping every %d-th prediction, serving\n", model.FlipEvery)
	failFile := os.Getenv("FAIL_FILE")
	var n atomic.Int64
	classes := []string{"setosa", "versicolor", "virginica"}
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, `{"status": "ok"}`) }
	mux.HandleFunc("GET /live", ok)
	mux.HandleFunc("GET /ready", ok)
	mux.HandleFunc("POST /score", func(w http.ResponseWriter, r *http.Request) {
		if failFile != "" {
			if _, err := os.Stat(failFile); err == nil {
				http.Error(w, `{"error": "the model failed"}`, http.StatusInternalServerError)
				return
			}
		}
		var in struct{ Data [][]json.Number }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, `{"error": "want {\"data\": [[numbers]]}"}`, http.StatusBadRequest)
			return
		}
		out := make([]string, len(in.Data))
		for i, row := range in.Data {
			x := int64(0)
			if len(row) > 0 {
				f, _ := row[0].Float64()
				x = int64(f)
			}
			c := ((x % 3) + 3) % 3
			if model.FlipEvery > 0 && n.Add(1)%model.FlipEvery == 0 {
				c = (c + 1) % 3
			}
			out[i] = classes[c]
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"species": out})
	})
	_ = http.Serve(ln, mux)
	return 0
}

// classifierModel writes a model folder for the classifier and returns it.
func classifierModel(t *testing.T, flipEvery int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("flip%d", flipEvery), "model")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.json"), []byte(fmt.Sprintf(`{"flip_every": %d}`, flipEvery)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// classifierDeployment is a deployment document for the classifier:
// this test binary as the scoring server, with extra YAML appended.
func classifierDeployment(t *testing.T, dir, name, endpoint, model string, env map[string]string, extra string) string {
	t.Helper()
	self := runnableSelf(t)
	code := filepath.Join(dir, "src")
	if err := os.MkdirAll(code, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(code, "README.txt"), []byte("the test binary serves this deployment\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`name: %s
endpoint_name: %s
model: %s
code_configuration: {code: ./src, scoring_script: README.txt}
environment:
  image: scratch
  plumbline: {runtime: generic, command: [%q]}
  inference_config:
    liveness_route: {port: 8080, path: /live}
    readiness_route: {port: 8080, path: /ready}
    scoring_route: {port: 8080, path: /score}
environment_variables:
  %s: "1"%s
readiness_probe: {initial_delay: 0, period: 1}
instance_type: Standard_DS2_v2
instance_count: 1
request_settings: {max_concurrent_requests_per_instance: 16}
%s`, name, endpoint, model, self, envClassifier, envLines(env), strings.TrimSpace(extra))
	path := filepath.Join(dir, name+".yml")
	if err := os.WriteFile(path, []byte(doc+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func envLines(env map[string]string) string {
	var b strings.Builder
	for k, v := range env {
		fmt.Fprintf(&b, "\n  %s: %q", k, v)
	}
	return b.String()
}

var (
	selfOnce sync.Once
	selfCopy string
	selfErr  error
)

// runnableSelf is this test binary, or, when the server runs as root (its
// instances then run as the unprivileged plumbline-instance user, who
// cannot enter go test's private build folder), one copy of it in a folder
// that user can enter, removed when the tests end (removeSelfCopy).
func runnableSelf(t *testing.T) string {
	t.Helper()
	selfOnce.Do(func() {
		self, err := os.Executable()
		if err != nil || os.Geteuid() != 0 {
			selfCopy, selfErr = self, err
			return
		}
		dir, err := os.MkdirTemp("", "plumbline-e2e-self-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		var b []byte
		if err == nil {
			b, err = os.ReadFile(self)
		}
		cp := filepath.Join(dir, filepath.Base(self))
		if err == nil {
			err = os.WriteFile(cp, b, 0o755)
		}
		selfCopy, selfErr = cp, err
	})
	if selfErr != nil {
		t.Fatalf("a copy of the test binary the instance user can run: %v", selfErr)
	}
	return selfCopy
}

// removeSelfCopy removes runnableSelf's copy, if it made one.
func removeSelfCopy() {
	if self, err := os.Executable(); err == nil && selfCopy != "" && selfCopy != self {
		os.RemoveAll(filepath.Dir(selfCopy))
	}
}
