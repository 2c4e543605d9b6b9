package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runAzScript runs one of test/azml's scripts with bash in dir, with
// `plumbline` on PATH (the scripts say alias az=plumbline), the data dir
// of the running server, and curl trusting its local CA.
func runAzScript(t *testing.T, s *server, dir, script string) result {
	t.Helper()
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip(t, tool+" is not installed")
		}
	}
	bin := t.TempDir()
	if err := os.Symlink(binPath, filepath.Join(bin, "plumbline")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot, "test", "azml", script))
	cmd.Dir = dir
	cmd.Env = cleanEnv("PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"PLUMBLINE_DATA_DIR="+s.dataDir, "CURL_CA_BUNDLE="+filepath.Join(s.dataDir, "tls", "ca.crt"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: []string{script}, stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		t.Fatalf("bash %s: %v\nstdout:\n%s\nstderr:\n%s", script, err, r.stdout, r.stderr)
	}
	return r
}

// TestAzMLSafeRollout runs Azure's safe-rollout article's az ml commands,
// as written, with alias az=plumbline (test/azml/safe-rollout.sh), and
// checks that they print what Azure prints.
func TestAzMLSafeRollout(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		skip(t, "python3 is not installed (the article's models are served by examples/python-generic)")
	}
	dd := newDataDir(t)
	s := startServer(t, dd)
	start := time.Now()
	r := runAzScript(t, s, filepath.Join(repoRoot, "test", "azml"), "safe-rollout.sh")
	t.Logf("safe-rollout.sh took %.1fs", time.Since(start).Seconds())

	// Blue scores model-1's request; green (by name, then with curl and the
	// key from get-credentials -o tsv --query primaryKey) model-2's.
	for _, want := range []struct{ what, text string }{
		{"invoke of blue", `{"predictions": [14.5, 32.5]}`},
		{"show --query traffic, zero-filled as Azure's", "{\n  \"blue\": 100,\n  \"green\": 0\n}\n"},
		{"invoke --deployment-name green, then curl with azureml-model-deployment: green", `{"predictions": [12.0]}` + "\n" + `{"predictions": [12.0]}`},
		{"the mirror set", "\"mirror_traffic\": {\n    \"green\": 10\n  },"},
		{"the 90/10 split", "\"traffic\": {\n    \"blue\": 90,\n    \"green\": 10\n  },"},
		{"all traffic to green", "\"traffic\": {\n    \"blue\": 0,\n    \"green\": 100\n  },"},
	} {
		if !strings.Contains(r.stdout, want.text) {
			t.Errorf("the script's output lacks %s (%q):\n%s", want.what, want.text, r.stdout)
		}
	}
	// The blue update scaled to two ready instances.
	if !strings.Contains(r.stdout, `"name": "blue-1",`+"\n      \"ready\": true") {
		t.Errorf("blue was not scaled to 2 ready instances:\n%s", r.stdout)
	}
	// delete --no-wait returns at once; the endpoint goes away after.
	deadline := time.Now().Add(time.Minute)
	for {
		var eps []map[string]any
		s.mustJSON(t, &eps, "online-endpoint", "list")
		if len(eps) == 0 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(eps)
			t.Fatalf("the endpoint is still there a minute after delete --no-wait: %s", b)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestAzMLSeed runs the seed article's az ml commands (test/azml/seed.sh)
// in a copy of examples/r-iris, with real R and plumber.
func TestAzMLSeed(t *testing.T) {
	dir := irisFolder(t)
	dd := newDataDir(t)
	s := startServer(t, dd)
	r := runAzScript(t, s, dir, "seed.sh")
	if !strings.Contains(r.stdout, `{"species":["virginica"]}`) {
		t.Errorf("invoke did not print the prediction for the sample request:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, `"name": "iris-crate"`) || !strings.Contains(r.stdout, `"provisioning_state": "Succeeded"`) {
		t.Errorf("model create and the deployment's JSON are missing:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "Deleted endpoint r-endpoint-iris") {
		t.Errorf("the endpoint was not deleted:\n%s", r.stderr)
	}
}
