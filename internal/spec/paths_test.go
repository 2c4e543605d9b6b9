package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPathResolution(t *testing.T) {
	src := `name: blue
endpoint_name: my-endpoint
model:
  name: m
  path: ./models
code_configuration:
  code: src
  scoring_script: plumber.R
environment:
  build:
    path: ../ctx
  conda_file: conda.yaml
  image: python:3.12
instance_type: Standard_DS3_v2
instance_count: 1
`
	doc := mustParse(t, "deployment.yml", strings.Replace(src, "  build:\n    path: ../ctx\n", "", 1), ParseOptions{BaseDir: "/work/app"})
	d := doc.Deployment
	if got, want := d.Model.Inline.Path, "/work/app/models"; got != want {
		t.Errorf("model.path: got %q, want %q", got, want)
	}
	if got, want := d.CodeConfiguration.Code, "/work/app/src"; got != want {
		t.Errorf("code: got %q, want %q", got, want)
	}
	if got, want := d.Environment.Inline.CondaFile.Path, "/work/app/conda.yaml"; got != want {
		t.Errorf("conda_file: got %q, want %q", got, want)
	}

	// Build contexts resolve too (image removed: image and build exclude each other).
	doc = mustParse(t, "deployment.yml", strings.Replace(strings.Replace(src, "  image: python:3.12\n", "", 1), "  conda_file: conda.yaml\n", "", 1), ParseOptions{BaseDir: "/work/app"})
	if got, want := doc.Deployment.Environment.Inline.Build.Path, "/work/ctx"; got != want {
		t.Errorf("build.path: got %q, want %q", got, want)
	}

	// No BaseDir: paths stay as written.
	doc = mustParse(t, "deployment.yml", strings.Replace(src, "  build:\n    path: ../ctx\n", "", 1), ParseOptions{})
	if got := doc.Deployment.Model.Inline.Path; got != "./models" {
		t.Errorf("unresolved model.path: got %q", got)
	}
}

func TestPathsWithSchemesAreLeftAlone(t *testing.T) {
	for _, p := range []string{
		"azureml:code:1", "azureml://datastores/workspaceblobstore/paths/m", "https://example.com/m.tar.gz",
		"http://example.com/m", "runs:/abc/model", "wasbs://c@a.blob.core.windows.net/m", "abfss://c@a.dfs.core.windows.net/m",
		"sha256:" + strings.Repeat("a", 64),
	} {
		t.Run(p, func(t *testing.T) {
			src := "name: m\npath: " + p + "\n"
			doc := mustParse(t, "model.yml", src, ParseOptions{BaseDir: "/base", Expect: KindModel})
			if doc.Model.Path != p {
				t.Errorf("path: got %q, want %q", doc.Model.Path, p)
			}
			if len(doc.LocalPaths()) != 0 {
				t.Errorf("LocalPaths: got %v, want none", doc.LocalPaths())
			}
			if len(doc.Warnings) != 0 {
				t.Errorf("warnings: %v", doc.Warnings)
			}
		})
	}
}

func TestLocalPathsRewrite(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"models", "src"} {
		if err := os.Mkdir(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := `name: blue
endpoint_name: my-endpoint
model: ./models
code_configuration:
  code: ./src
  scoring_script: plumber.R
environment:
  image: rstudio/plumber
  conda_file: {channels: [conda-forge], dependencies: [python]}
instance_type: Standard_DS3_v2
instance_count: 1
`
	doc := mustParse(t, "deployment.yml", src, ParseOptions{BaseDir: dir})
	if len(doc.Warnings) != 0 {
		t.Errorf("warnings: %v", doc.Warnings)
	}
	refs := doc.Deployment.LocalPaths()
	var got [][2]string
	for _, r := range refs {
		got = append(got, [2]string{r.Field, r.Path})
	}
	want := [][2]string{{"model", filepath.Join(dir, "models")}, {"code_configuration.code", filepath.Join(dir, "src")}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("LocalPaths (-want +got):\n%s", diff)
	}
	digest := "sha256:" + strings.Repeat("0", 64)
	for _, r := range refs {
		r.Set(digest)
	}
	d := doc.Deployment
	if d.Model.Kind != RefDigest || d.Model.Digest != digest || d.Model.Raw != digest {
		t.Errorf("model after Set: %+v", d.Model)
	}
	if d.CodeConfiguration.Code != digest {
		t.Errorf("code after Set: %q", d.CodeConfiguration.Code)
	}
	if len(d.LocalPaths()) != 0 {
		t.Errorf("LocalPaths after upload: %v", d.LocalPaths())
	}
	if err := d.Validate(); err != nil {
		t.Errorf("Validate after upload: %v", err)
	}
}

func TestIsLocalPath(t *testing.T) {
	tests := map[string]bool{
		"": false, "./m": true, "m": true, "/abs/m": true, "../up": true, `C:\models`: true, "dir/with:colon": true,
		"azureml:m:1": false, "https://x": false, "runs:/x": false, "sha256:ab": false, "s3://b/k": false,
	}
	for in, want := range tests {
		if got := IsLocalPath(in); got != want {
			t.Errorf("IsLocalPath(%q) = %v, want %v", in, got, want)
		}
	}
}
