package spec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sharedDir is the shared test folder: $PLUMBLINE_SHARED, or ../../../shared
// relative to this package (the repository's sibling "shared" folder).
func sharedDir() string {
	if d := os.Getenv("PLUMBLINE_SHARED"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared")
}

var placeholderRE = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// fillPlaceholders replaces the samples' {{…}} tokens with valid values, as
// testdata/README.md says the samples' shell scripts do.
func fillPlaceholders(t *testing.T, file string, data []byte) []byte {
	t.Helper()
	return placeholderRE.ReplaceAllFunc(data, func(m []byte) []byte {
		name := strings.ToLower(string(placeholderRE.FindSubmatch(m)[1]))
		switch {
		case strings.Contains(name, "endpoint_name"):
			return []byte("my-endpoint")
		case strings.Contains(name, "version"):
			return []byte("1")
		case strings.Contains(name, "acr_name"):
			return []byte("myacr")
		case strings.Contains(name, "model_name"):
			return []byte("model-1")
		case strings.Contains(name, "deployment_name"):
			return []byte("blue")
		case strings.Contains(name, "environment_name"):
			return []byte("my-env")
		}
		t.Fatalf("%s: no value for placeholder %s; add one to fillPlaceholders", file, m)
		return m
	})
}

// TestAzureExamples parses and validates every file of Azure's examples, and
// checks that the defaulted document, shown as JSON, parses again (so `show`
// output can be fed back).
func TestAzureExamples(t *testing.T) {
	root := filepath.Join(sharedDir(), "testdata", "azureml-examples")
	if _, err := os.Stat(root); err != nil {
		t.Skipf("Azure examples not found at %s (set PLUMBLINE_SHARED to the shared folder): %v", root, err)
	}
	var files []string
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yml", ".yaml":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no YAML files under %s", root)
	}
	for _, p := range files {
		rel, _ := filepath.Rel(root, p)
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			data = fillPlaceholders(t, rel, data)
			// The managed-identity samples leave endpoint_name to
			// --endpoint-name: that is a warning, not an error.
			doc, err := Parse(filepath.Base(p), data, ParseOptions{BaseDir: filepath.Dir(p)})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if want := kindFromName(filepath.Base(p)); doc.Kind != want {
				t.Errorf("kind: got %q, want %q", doc.Kind, want)
			}
			for _, n := range append(doc.Notices, doc.Warnings...) {
				if n.Line == 0 || n.File == "" {
					t.Errorf("notice without a location: %+v", n)
				}
			}
			reparseDefaulted(t, doc)
		})
	}
}

func kindFromName(name string) Kind {
	switch {
	case strings.Contains(name, "endpoint"):
		return KindEndpoint
	case strings.Contains(name, "deployment"):
		return KindDeployment
	case strings.HasPrefix(name, "model"):
		return KindModel
	case strings.HasPrefix(name, "env"):
		return KindConda
	}
	return ""
}

// reparseDefaulted shows the defaulted document as JSON and parses it again.
func reparseDefaulted(t *testing.T, doc *Document) {
	t.Helper()
	var v any
	switch doc.Kind {
	case KindEndpoint:
		v = doc.Endpoint.Defaulted()
	case KindDeployment:
		v = doc.Deployment.Defaulted()
	case KindModel:
		v = doc.Model.Defaulted()
	case KindEnvironment:
		v = doc.Environment.Defaulted()
	default:
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("show.json", b, ParseOptions{Expect: doc.Kind})
	if err != nil {
		t.Fatalf("Parse(defaulted JSON): %v\n%s", err, b)
	}
	var got any
	switch doc.Kind {
	case KindEndpoint:
		got = again.Endpoint
	case KindDeployment:
		got = again.Deployment
	case KindModel:
		got = again.Model
	case KindEnvironment:
		got = again.Environment
	}
	if diff := cmp.Diff(v, got); diff != "" {
		t.Errorf("defaulted document changed through JSON (-want +got):\n%s", diff)
	}
}

// TestSeedFiles loads the seed's endpoint.yml and deployment.yml
// (reference/seed-deploy-r-model.md, placeholders filled in).
func TestSeedFiles(t *testing.T) {
	ep, doc, err := LoadEndpoint(filepath.Join("testdata", "seed", "endpoint.yml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantEP := &Endpoint{
		Schema:   "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json",
		Name:     "r-endpoint-iris",
		AuthMode: AuthAMLToken,
	}
	if diff := cmp.Diff(wantEP, ep); diff != "" {
		t.Errorf("endpoint (-want +got):\n%s", diff)
	}
	if len(doc.Notices)+len(doc.Warnings) != 0 {
		t.Errorf("notices %v, warnings %v; want none", doc.Notices, doc.Warnings)
	}

	dep, doc, err := LoadDeployment(filepath.Join("testdata", "seed", "deployment.yml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "seed"))
	if err != nil {
		t.Fatal(err)
	}
	route := func(path string) *Route { return &Route{Port: 8000, Path: path} }
	wantDep := &Deployment{
		Schema:            "https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json",
		Name:              "blue",
		EndpointName:      "r-endpoint-iris",
		CodeConfiguration: &CodeConfiguration{Code: filepath.Join(dir, "src"), ScoringScript: "plumber.R"},
		Model:             &ModelRef{Raw: "azureml:rcrate@latest", Kind: RefRegistered, Name: "rcrate", Label: "latest"},
		Environment: &EnvironmentRef{Kind: RefInline, Inline: &Environment{
			Image: "myacr.azurecr.io/r-plumber:1",
			InferenceConfig: &InferenceConfig{
				LivenessRoute: route("/live"), ReadinessRoute: route("/ready"), ScoringRoute: route("/score"),
			},
		}},
		InstanceType:  "Standard_DS2_v2",
		InstanceCount: intp(1),
	}
	if diff := cmp.Diff(wantDep, dep); diff != "" {
		t.Errorf("deployment (-want +got):\n%s", diff)
	}
	if len(doc.Notices)+len(doc.Warnings) != 0 {
		t.Errorf("notices %v, warnings %v; want none", doc.Notices, doc.Warnings)
	}
	// The wrong loader says what the file is.
	if _, _, err := LoadEndpoint(filepath.Join("testdata", "seed", "deployment.yml"), nil); err == nil ||
		!strings.Contains(err.Error(), "this is a deployment file") {
		t.Errorf("LoadEndpoint(deployment.yml): got %v", err)
	}
	if _, _, err := LoadModel(filepath.Join("testdata", "seed", "missing.yml"), nil); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("LoadModel(missing): got %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
