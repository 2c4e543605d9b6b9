package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestAzureCommonFlags: the flags az scripts carry everywhere work as in
// Azure: -o none prints nothing, -o jsonc and -o yamlc are json and yaml
// (colour only on a terminal), --only-show-errors keeps notes off standard
// error, --force-string keeps a --set value a string, and --no-wait
// returns before a deployment is ready and says how to follow it.
func TestAzureCommonFlags(t *testing.T) {
	fixture := filepath.Join("testdata", "fixture")
	mustCLI(t, "online-endpoint", "create", "-f", filepath.Join(fixture, "endpoint.yml"), "--name", "azflags")

	t.Run("-o none", func(t *testing.T) {
		if r := mustCLI(t, "online-endpoint", "show", "-n", "azflags", "-o", "none"); r.stdout != "" {
			t.Errorf("-o none printed %q", r.stdout)
		}
	})
	t.Run("-o jsonc and yamlc", func(t *testing.T) {
		var j map[string]any
		r := mustCLI(t, "online-endpoint", "show", "-n", "azflags", "-o", "jsonc")
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j["name"] != "azflags" {
			t.Errorf("-o jsonc to a pipe is not plain JSON naming the endpoint: %v\n%s", err, r.stdout)
		}
		var y map[string]any
		r = mustCLI(t, "online-endpoint", "show", "-n", "azflags", "-o", "yamlc")
		if err := yaml.Unmarshal([]byte(r.stdout), &y); err != nil || y["name"] != "azflags" || strings.Contains(r.stdout, "\x1b[") {
			t.Errorf("-o yamlc to a pipe is not plain YAML naming the endpoint: %v\n%s", err, r.stdout)
		}
	})
	t.Run("--only-show-errors", func(t *testing.T) {
		r := mustCLI(t, "online-endpoint", "show", "-n", "azflags", "-g", "rg", "-o", "none")
		if !strings.Contains(r.stderr, "ignores Azure's --resource-group rg") {
			t.Fatalf("without --only-show-errors: stderr %q; want the note", r.stderr)
		}
		r = mustCLI(t, "online-endpoint", "show", "-n", "azflags", "-g", "rg", "-o", "none", "--only-show-errors")
		if r.stderr != "" {
			t.Errorf("--only-show-errors: stderr %q, want nothing", r.stderr)
		}
		r = cli(t, "online-endpoint", "show", "-n", "no-such-endpoint", "--only-show-errors")
		if r.code != 1 || !strings.Contains(r.stderr, "no-such-endpoint") {
			t.Errorf("--only-show-errors hid an error: exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("--force-string", func(t *testing.T) {
		r := mustCLI(t, "online-endpoint", "update", "-n", "azflags", "--set", "tags.build=[1,2]", "--force-string", "--query", "tags.build", "-o", "json")
		var got any
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got != "[1,2]" {
			t.Errorf("--force-string: tags.build is %v (%v), want the string \"[1,2]\"", got, err)
		}
		if r := cli(t, "online-endpoint", "update", "-n", "azflags", "--set", "description=[1,2]"); r.code == 0 {
			t.Errorf("without --force-string a JSON list went into description: %s", r.stdout)
		}
	})
	t.Run("--no-wait", func(t *testing.T) {
		bin, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		mustCLI(t, "model", "create", "--name", "azflags-model", "--version", "1", "--path", filepath.Join(fixture, "model"))
		r := mustCLI(t, "online-deployment", "create", "-f", filepath.Join(fixture, "deployment.yml"), "--endpoint", "azflags",
			"--set", `environment.plumbline.command=["`+instanceRunnable(t, bin)+`"]`, "model=azureml:azflags-model:1", "--no-wait", "--query", "provisioning_state", "-o", "tsv")
		if st := strings.TrimSpace(r.stdout); st == "Succeeded" || st == "Failed" {
			t.Errorf("--no-wait returned a finished deployment (%s); want it to return once creation started", st)
		}
		if !strings.Contains(r.stderr, "follow with: plumbline online-deployment show -n blue -e azflags") {
			t.Errorf("--no-wait: stderr %q; want how to follow the deployment", r.stderr)
		}
		mustCLI(t, "online-deployment", "delete", "-n", "blue", "-e", "azflags", "--yes")
		mustCLI(t, "online-endpoint", "delete", "-n", "azflags", "--yes")
	})
}
