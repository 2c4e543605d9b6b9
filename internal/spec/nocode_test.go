package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoCodeAzureShapes validates Azure's no-code deployment shapes (an
// MLflow model referenced by name, inline mlflow_model models, a
// triton_model): none has environment or code_configuration, and Azure
// accepts each.
func TestNoCodeAzureShapes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "nocode", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Fatalf("got %d no-code files, want the 4 held-out shapes", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			doc := mustParse(t, filepath.Base(f), string(src), ParseOptions{BaseDir: "testdata/nocode"})
			d := doc.Deployment
			if d == nil {
				t.Fatalf("got kind %s, want a deployment", doc.Kind)
			}
			if d.Environment != nil || d.CodeConfiguration != nil {
				t.Fatalf("the shape has environment or code; the test data is wrong")
			}
			if !d.NoCode() {
				t.Errorf("NoCode() = false, want true")
			}
		})
	}
}

// TestNoCodeRules covers which deployments may omit the environment.
func TestNoCodeRules(t *testing.T) {
	const head = "name: blue\nendpoint_name: my-endpoint\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n"
	const missing = "deployment.yml: environment: missing; set an environment: azureml:<name>:<version>, or inline with image and inference_config"
	tests := []struct {
		name, src, want string
	}{
		{"inline mlflow_model", head + "model:\n  path: ./model\n  type: mlflow_model\n", ""},
		{"inline triton_model", head + "model:\n  path: ./models\n  type: triton_model\n", ""},
		{"registered model, type known to the server", head + "model: azureml:iris:1\n", ""},
		{"registry model", head + "model: azureml://registries/azureml/models/iris/versions/1\n", ""},
		{"inline custom_model", head + "model:\n  path: ./model\n  type: custom_model\n", missing},
		{"inline model without type is custom", head + "model:\n  path: ./model\n", missing},
		{"local path model", head + "model: ./model.rds\n", missing},
		{"no model", head, missing},
		{"mlflow model with a scoring script needs the environment",
			head + "model:\n  path: ./model\n  type: mlflow_model\ncode_configuration:\n  code: ./src\n  scoring_script: score.py\n", missing},
		{"builtin scorer on a bare rds", head + "model: ./model.rds\nplumbline:\n  scorer: builtin\n", ""},
		{"builtin scorer without a model", head + "plumbline:\n  scorer: builtin\n",
			"deployment.yml:6:11: plumbline.scorer: the built-in scorer serves the deployment's model; set model (a path, azureml:<name>:<version> or an inline model)\n" + missing},
		{"unknown scorer", head + "model: ./m.rds\nplumbline:\n  scorer: built-in\n",
			`deployment.yml:7:11: plumbline.scorer: must be one of builtin; got "built-in"; did you mean builtin?` + "\n" + missing},
		{"input prototype", head + "model: ./m.rds\nplumbline:\n  scorer: builtin\n  input:\n    prototype:\n      x1: numeric\n    extra_columns: ignore\n", ""},
		{"input without prototype or schema", head + "model: ./m.rds\nplumbline:\n  scorer: builtin\n  input:\n    extra_columns: ignore\n",
			"deployment.yml:8:3: plumbline.input: set prototype (the columns and their types) or json_schema"},
		{"input with both", head + "model: ./m.rds\nplumbline:\n  scorer: builtin\n  input:\n    prototype: {x: numeric}\n    json_schema: {type: object}\n",
			"deployment.yml:8:3: plumbline.input: prototype and json_schema cannot both be set; keep one"},
		{"bad policy", head + "model: ./m.rds\nplumbline:\n  scorer: builtin\n  input:\n    prototype: {x: numeric}\n    all_na_columns: keep\n",
			`deployment.yml:10:21: plumbline.input.all_na_columns: must be one of reject, allow; got "keep"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errText(t, "deployment.yml", tt.src, ParseOptions{})
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestNoCodeMissingMessageUnchanged keeps the message a custom model without
// environment gets, word for word.
func TestNoCodeMissingMessageUnchanged(t *testing.T) {
	got := errText(t, "d.yml", "name: blue\nendpoint_name: e-1\ninstance_type: Standard_DS3_v2\ninstance_count: 1\nmodel: azureml:m:1\ncode_configuration:\n  code: src\n  scoring_script: plumber.R\n", ParseOptions{})
	if !strings.Contains(got, "environment: missing; set an environment: azureml:<name>:<version>, or inline with image and inference_config") {
		t.Errorf("got %q", got)
	}
}
