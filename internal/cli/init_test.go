package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func runCLI(t *testing.T, args ...string) (code int, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, errb.String()
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestInitR(t *testing.T) {
	all := []string{"deployment.yml", "docker-context/Dockerfile", "docker-context/start_plumber.R", "endpoint.yml", "sample_request.json", "src/plumber.R", "train.R"}

	t.Run("a new folder", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cars-model")
		if code, errs := runCLI(t, "init", "r", dir); code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if d := cmp.Diff(all, files(t, dir)); d != "" {
			t.Errorf("files (-want +got):\n%s", d)
		}
		dep, _ := os.ReadFile(filepath.Join(dir, "deployment.yml"))
		if !strings.Contains(string(dep), "endpoint_name: cars-model\n") || !strings.Contains(string(dep), "code: ./src\n") {
			t.Errorf("deployment.yml:\n%s", dep)
		}
		// Again: nothing to add, nothing changed.
		code, errs := runCLI(t, "init", "r", dir)
		if code != 0 || !strings.Contains(errs, "Nothing to add") {
			t.Errorf("second init: exit %d: %s", code, errs)
		}
	})

	t.Run("an existing folder with its own model and plumber.R", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "my-forest")
		os.MkdirAll(filepath.Join(dir, "models"), 0o755)
		own := map[string]string{
			"plumber.R":        "#* @post /score\nfunction() 1\n",
			"models/crate.bin": "mine",
			"endpoint.yml":     "name: my-forest\nauth_mode: key\n",
		}
		for f, body := range own {
			os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644)
		}
		code, errs := runCLI(t, "init", "r", dir)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		want := []string{"deployment.yml", "docker-context/Dockerfile", "docker-context/start_plumber.R", "endpoint.yml", "models/crate.bin", "plumber.R"}
		if d := cmp.Diff(want, files(t, dir)); d != "" {
			t.Errorf("files (-want +got):\n%s\nstderr: %s", d, errs)
		}
		for f, body := range own {
			if b, _ := os.ReadFile(filepath.Join(dir, f)); string(b) != body {
				t.Errorf("%s was changed: %q", f, b)
			}
		}
		dep, _ := os.ReadFile(filepath.Join(dir, "deployment.yml"))
		if !strings.Contains(string(dep), "code: .\n") {
			t.Errorf("deployment.yml does not point at ./plumber.R:\n%s", dep)
		}
		for _, w := range []string{"kept endpoint.yml", "Added deployment.yml, docker-context/Dockerfile, docker-context/start_plumber.R", "example model", "Next: plumbline up"} {
			if !strings.Contains(errs, w) {
				t.Errorf("output lacks %q:\n%s", w, errs)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "src")); err == nil {
			t.Errorf("an empty src/ was left behind")
		}
	})
}

// TestScaffoldDockerfileNoWarning: up does not warn about the Dockerfile of
// the folder init r makes, nor about the seed example's: they install carrier
// (not needed to call a crate) and packages plumbline's R already has.
func TestScaffoldDockerfileNoWarning(t *testing.T) {
	scaffold := filepath.Join(t.TempDir(), "cars-model")
	if code, errs := runCLI(t, "init", "r", scaffold); code != 0 {
		t.Fatalf("init r: exit %d: %s", code, errs)
	}
	dirs := []string{scaffold}
	// The seed's Dockerfile also installs randomForest: no warning where
	// this machine's R has it (scripts/install-deps.sh installs it).
	if _, err := exec.LookPath("Rscript"); err == nil {
		dirs = append(dirs, filepath.Join("..", "..", "examples", "r-iris"))
	} else if os.Getenv("PLUMBLINE_CI") == "1" {
		t.Fatal("PLUMBLINE_CI=1 and Rscript is missing: bash scripts/install-deps.sh installs R")
	} else {
		t.Log("Rscript is not installed: checking only the scaffold's Dockerfile")
	}
	for _, dir := range dirs {
		plan, err := loadUpPlan(dir, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, d := range plan.deployments {
			if w := dockerfileWarning(context.Background(), dir, d.Deployment); w != "" {
				t.Errorf("%s: up would warn: %s", dir, w)
			}
		}
	}
}
