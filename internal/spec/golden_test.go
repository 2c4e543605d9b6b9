package spec

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestDefaultedGolden pins the "show"-style JSON of defaulted deployments,
// so a change of a default or of a field name is visible in review.
func TestDefaultedGolden(t *testing.T) {
	tests := []struct {
		name, in, golden string
	}{
		{"seed managed deployment", "seed/deployment.yml", "seed-deployment.golden"},
		{"kubernetes deployment", "k8s-deployment.yml", "k8s-deployment.golden"},
		{"seed endpoint", "seed/endpoint.yml", "seed-endpoint.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.in))
			if err != nil {
				t.Fatal(err)
			}
			// No BaseDir: paths stay relative, so the golden file does not
			// depend on where the repository is checked out.
			doc, err := Parse(filepath.Base(tt.in), data, ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var v any = doc.Endpoint.Defaulted()
			if doc.Kind == KindDeployment {
				v = doc.Deployment.Defaulted()
			}
			got, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (-want +got):\n%s", path, cmp.Diff(string(want), string(got)))
			}
		})
	}
}

func TestDefaultedLeavesOriginal(t *testing.T) {
	doc := mustParse(t, "deployment.yml", okDeployment+"readiness_probe:\n  period: 3\n", ParseOptions{})
	d := doc.Deployment
	def := d.Defaulted()
	if d.ReadinessProbe.InitialDelay != nil {
		t.Errorf("original readiness initial_delay was set by Defaulted")
	}
	if got := *def.ReadinessProbe.InitialDelay; got != DefaultProbeInitialDelay {
		t.Errorf("defaulted initial_delay: got %d", got)
	}
	if got := *def.ReadinessProbe.Period; got != 3 {
		t.Errorf("defaulted period: got %d, want the user's 3", got)
	}
	if def.Type != DeploymentManaged || def.ScaleSettings.Type != ScaleDefault || def.ScaleSettings.MinInstances != nil {
		t.Errorf("managed defaults: type %q scale %+v", def.Type, def.ScaleSettings)
	}
	if err := def.Validate(); err != nil {
		t.Errorf("defaulted deployment does not validate: %v", err)
	}

	env := (&Environment{Name: "e", Build: &BuildContext{Path: "ctx"}}).Defaulted()
	if env.OSType != "linux" || env.Build.DockerfilePath != DefaultDockerfilePath {
		t.Errorf("environment defaults: %+v %+v", env, env.Build)
	}
	if m := (&Model{Name: "m", Path: "p"}).Defaulted(); m.Type != ModelTypeCustom {
		t.Errorf("model type default: %q", m.Type)
	}
	if e := (&Endpoint{Name: "my-endpoint", AuthMode: "AMLToken"}).Defaulted(); e.AuthMode != AuthAMLToken {
		t.Errorf("endpoint auth_mode: %q", e.AuthMode)
	}
	if e := (&Endpoint{Name: "my-endpoint"}).Defaulted(); e.AuthMode != AuthKey {
		t.Errorf("endpoint auth_mode default: %q", e.AuthMode)
	}
}

func TestExpandCommand(t *testing.T) {
	x := &EnvironmentExtension{Runtime: RuntimeGeneric, Command: []string{"python", "serve.py", "--port={port}", "--model", "{model_dir}/m.pkl", "{code_dir}"}}
	got := x.ExpandCommand(8123, "/models", "/code")
	want := []string{"python", "serve.py", "--port=8123", "--model", "/models/m.pkl", "/code"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
