package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const sampleDeployment = `name: blue
endpoint_name: cars
code_configuration: {code: ./src, scoring_script: plumber.R}
environment: {image: rstudio/plumber}
instance_type: Standard_DS2_v2
instance_count: 1
plumbline:
  sample_request: %s
`

func TestSampleRequest(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sample_request.json"), []byte(`{"wt": [2.62], "hp": [110]}`), 0o644)
	os.WriteFile(filepath.Join(dir, "scalar.json"), []byte(`42`), 0o644)
	os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"wt": `), 0o644)
	tests := []struct {
		name    string
		value   string
		baseDir string
		want    any
		wantErr string
	}{
		{"a file next to the YAML is read", "sample_request.json", dir, map[string]any{"wt": []any{2.62}, "hp": []any{110}}, ""},
		{"inline", "{wt: [2.62]}", "", map[string]any{"wt": []any{2.62}}, ""},
		{"a list of records", "[{wt: 2.62}]", "", []any{map[string]any{"wt": 2.62}}, ""},
		{"a missing file", "nope.json", dir, nil, "plumbline.sample_request: stat " + filepath.Join(dir, "nope.json")},
		{"not JSON", "broken.json", dir, nil, "broken.json is not JSON"},
		{"not a request body", "scalar.json", dir, nil, "a sample request is a JSON object or list"},
		{"a path sent to the API", "sample_request.json", "", nil, `plumbline.sample_request: "sample_request.json" is a file path, which only the CLI reads`},
		{"a number", "3", "", nil, "plumbline.sample_request: must be a request body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse("deployment.yml", []byte(strings.Replace(sampleDeployment, "%s", tt.value, 1)), ParseOptions{BaseDir: tt.baseDir})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := doc.Deployment.Plumbline.SampleRequest
			if d := cmp.Diff(tt.want, normalizeNumbers(got)); d != "" {
				t.Errorf("sample request (-want +got):\n%s", d)
			}
		})
	}
}

// normalizeNumbers makes JSON's float64 and YAML's int comparable.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalizeNumbers(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeNumbers(e)
		}
		return out
	case float64:
		if x == float64(int(x)) {
			return int(x)
		}
	}
	return v
}
