package spec

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseModelRef(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		name string
		in   string
		want ModelRef
	}{
		{"name and version", "azureml:my-model:1",
			ModelRef{Kind: RefRegistered, Name: "my-model", Version: "1"}},
		{"latest label", "azureml:rcrate@latest",
			ModelRef{Kind: RefRegistered, Name: "rcrate", Label: "latest"}},
		{"name only means latest", "azureml:rcrate",
			ModelRef{Kind: RefRegistered, Name: "rcrate", Label: "latest"}},
		{"ARM id", "azureml:/subscriptions/0000/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/models/my-model/versions/3",
			ModelRef{Kind: RefRegistered, Name: "my-model", Version: "3"}},
		{"registry version", "azureml://registries/azureml/models/phi-2/versions/7",
			ModelRef{Kind: RefRegistry, Registry: "azureml", Name: "phi-2", Version: "7"}},
		{"registry label", "azureml://registries/shared/models/my.model/labels/latest",
			ModelRef{Kind: RefRegistry, Registry: "shared", Name: "my.model", Label: "latest"}},
		{"relative path", "./models",
			ModelRef{Kind: RefLocalPath, Path: "./models"}},
		{"absolute path", "/srv/models/crate.bin",
			ModelRef{Kind: RefLocalPath, Path: "/srv/models/crate.bin"}},
		{"digest", digest,
			ModelRef{Kind: RefDigest, Digest: digest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseModelRef(tt.in)
			if err != nil {
				t.Fatalf("ParseModelRef(%q): %v", tt.in, err)
			}
			tt.want.Raw = tt.in
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseModelRefErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "empty model reference; write azureml:<name>:<version>, azureml:<name>@latest or azureml://registries/<registry>/models/<name>/versions/<version>"},
		{"empty version", "azureml:m:", `"azureml:m:": version "": a version is letters, digits, '.', '_' and '-', starting with a letter or digit`},
		{"empty label", "azureml:m@", `"azureml:m@": the label after @ is empty; write azureml:<name>@latest`},
		{"bad name", "azureml:-m:1", `"azureml:-m:1": The name for a model must be 1 to 255 characters long, start with a letter or digit and only consist of letters, digits, '-', '_' and '.'.`},
		{"short digest", "sha256:abc", `"sha256:abc" is not a digest: sha256: must be followed by 64 hex digits`},
		{"datastore URI", "azureml://datastores/workspaceblobstore/paths/m", `"azureml://datastores/workspaceblobstore/paths/m" is not a model reference; write azureml:<name>:<version>, azureml:<name>@latest or azureml://registries/<registry>/models/<name>/versions/<version> (a datastore or job URI belongs in an inline model's path)`},
		{"registry of environments", "azureml://registries/azureml/environments/e/versions/1", `"azureml://registries/azureml/environments/e/versions/1" is not a model reference; write azureml:<name>:<version>, azureml:<name>@latest or azureml://registries/<registry>/models/<name>/versions/<version> (a datastore or job URI belongs in an inline model's path)`},
		{"short ARM id", "azureml:/subscriptions/x/models/m", `"azureml:/subscriptions/x/models/m": the long form is azureml:/subscriptions/…/models/<name>/versions/<version>`},
		{"https", "https://example.com/m", `"https://example.com/m" is a URI, not a model reference; write azureml:<name>:<version>, azureml:<name>@latest or azureml://registries/<registry>/models/<name>/versions/<version>, or an inline model with path: <uri>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseModelRef(tt.in)
			if err == nil {
				t.Fatalf("ParseModelRef(%q): no error", tt.in)
			}
			if err.Error() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", err, tt.want)
			}
		})
	}
}

func TestParseEnvironmentRef(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want EnvironmentRef
	}{
		{"name and version", "azureml:my-env:1", EnvironmentRef{Kind: RefRegistered, Name: "my-env", Version: "1"}},
		{"latest", "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest", EnvironmentRef{Kind: RefRegistered, Name: "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", Label: "latest"}},
		{"curated registry", "azureml://registries/azureml/environments/sklearn-1.5/labels/latest", EnvironmentRef{Kind: RefRegistry, Registry: "azureml", Name: "sklearn-1.5", Label: "latest"}},
		{"ARM id", "azureml:/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/environments/e1/versions/2", EnvironmentRef{Kind: RefRegistered, Name: "e1", Version: "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnvironmentRef(tt.in)
			if err != nil {
				t.Fatalf("ParseEnvironmentRef(%q): %v", tt.in, err)
			}
			tt.want.Raw = tt.in
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"./env.yml", "sha256:" + strings.Repeat("0", 64)} {
		if _, err := ParseEnvironmentRef(bad); err == nil {
			t.Errorf("ParseEnvironmentRef(%q): no error", bad)
		}
	}
}

func TestInlineModelAndRoundTrip(t *testing.T) {
	src := okDeployment + "description: x\n"
	src = strings.Replace(src, "model: azureml:my-model:1\n", "model:\n  name: rplumber\n  version: 1\n  path: ./models\n", 1)
	doc := mustParse(t, "deployment.yml", src, ParseOptions{})
	m := doc.Deployment.Model
	want := &ModelRef{Kind: RefInline, Inline: &Model{Name: "rplumber", Version: "1", Path: "./models"}}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("model (-want +got):\n%s", diff)
	}

	// JSON round trip (the store keeps documents as JSON).
	b, err := json.Marshal(doc.Deployment)
	if err != nil {
		t.Fatal(err)
	}
	var back Deployment
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	if diff := cmp.Diff(doc.Deployment, &back, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// And back through Parse, as the API server does with request bodies.
	again := mustParse(t, "body.json", string(b), ParseOptions{})
	if diff := cmp.Diff(doc.Deployment, again.Deployment, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("reparse (-want +got):\n%s", diff)
	}
}

func TestRefsFromGoAndJSON(t *testing.T) {
	// A scalar that is not a string is not a path.
	src := strings.Replace(okDeployment, "model: azureml:my-model:1", "model: 5", 1)
	want := "deployment.yml:4:8: model: expected a model reference (azureml:<name>:<version>) or an inline model (name, path), got number 5"
	if got := errText(t, "deployment.yml", src, ParseOptions{}); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}

	// JSON decoding is lenient; Validate reports the bad reference, and
	// Defaulted (which copies through JSON) does not touch the original.
	var d Deployment
	body := `{"name": "blue", "endpoint_name": "my-endpoint", "model": "azureml:m:", "environment": "./env.yml",
		"instance_type": "Standard_DS3_v2", "instance_count": 1}`
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	def := d.Defaulted()
	if d.RequestSettings != nil || def.RequestSettings == nil {
		t.Errorf("Defaulted changed the original or did not default: %+v / %+v", d.RequestSettings, def.RequestSettings)
	}
	wantErr := lines(
		`model: "azureml:m:": version "": a version is letters, digits, '.', '_' and '-', starting with a letter or digit`,
		`environment: "./env.yml" is not an environment reference; write azureml:<name>:<version>, azureml:<name>@latest, azureml://registries/<registry>/environments/<name>/versions/<version>, or an inline environment (image: …)`)
	if err := d.Validate(); err == nil || err.Error() != wantErr {
		t.Errorf("Validate: got\n%v\nwant\n%s", err, wantErr)
	}
}
