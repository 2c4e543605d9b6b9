package spec

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMessages pins the exact one-line message, with its location, for each
// kind of mistake a user makes.
func TestMessages(t *testing.T) {
	tests := []struct {
		name string
		file string
		src  string
		opts ParseOptions
		want string
	}{
		{
			name: "endpoint name too short",
			file: "endpoint.yml",
			src:  "name: ab\nauth_mode: key\n",
			want: "endpoint.yml:1:7: name: The name for an endpoint must be at least 3 and at most 32 characters long (inclusive of both limits).",
		},
		{
			name: "endpoint name too long",
			file: "endpoint.yml",
			src:  "name: a23456789012345678901234567890123\n",
			opts: ParseOptions{Expect: KindEndpoint},
			want: "endpoint.yml:1:7: name: The name for an endpoint must be at least 3 and at most 32 characters long (inclusive of both limits).",
		},
		{
			name: "endpoint name with a trailing dash",
			file: "endpoint.yml",
			src:  "name: my-endpoint-\n",
			opts: ParseOptions{Expect: KindEndpoint},
			want: "endpoint.yml:1:7: name: The name for an endpoint must start with an upper- or lowercase letter and only consist of '-'s and alphanumeric characters.",
		},
		{
			name: "endpoint name starting with a digit",
			file: "endpoint.yml",
			src:  "name: 1endpoint\n",
			opts: ParseOptions{Expect: KindEndpoint},
			want: "endpoint.yml:1:7: name: The name for an endpoint must start with an upper- or lowercase letter and only consist of '-'s and alphanumeric characters.",
		},
		{
			name: "deployment name with a trailing dash",
			file: "deployment.yml",
			src:  strings.Replace(okDeployment, "name: blue", "name: blue-", 1),
			want: "deployment.yml:2:7: name: The name for a deployment must start with an upper- or lowercase letter and only consist of '-'s and alphanumeric characters.",
		},
		{
			name: "endpoint_name with an underscore",
			file: "deployment.yml",
			src:  strings.Replace(okDeployment, "endpoint_name: my-endpoint", "endpoint_name: my_endpoint", 1),
			want: "deployment.yml:3:16: endpoint_name: The name for an endpoint must start with an upper- or lowercase letter and only consist of '-'s and alphanumeric characters.",
		},
		{
			name: "quoted placeholder left in a name",
			file: "endpoint.yml",
			src:  "name: \"{{ENDPOINT_NAME}}\"\n",
			opts: ParseOptions{Expect: KindEndpoint},
			want: "endpoint.yml:1:7: name: The name for an endpoint must start with an upper- or lowercase letter and only consist of '-'s and alphanumeric characters. (It looks like a template placeholder that was not replaced.)",
		},
		{
			name: "unquoted placeholder",
			file: "deployment.yml",
			src:  strings.Replace(okDeployment, "endpoint_name: my-endpoint", "endpoint_name: {{ENDPOINT_NAME}}", 1),
			want: "deployment.yml:3:16: endpoint_name: {{ENDPOINT_NAME}} is a template placeholder that was not replaced; put a real value here",
		},
		{
			name: "traffic totals 90",
			file: "endpoint.yml",
			src:  "name: my-endpoint\ntraffic:\n  blue: 60\n  green: 30\n",
			want: "endpoint.yml:2:1: traffic: must total 0 or 100; it totals 90: blue=60 green=30",
		},
		{
			name: "traffic value above 100",
			file: "endpoint.yml",
			src:  "name: my-endpoint\ntraffic:\n  blue: 110\n",
			want: lines(
				"endpoint.yml:2:1: traffic: must total 0 or 100; it totals 110: blue=110",
				"endpoint.yml:3:9: traffic.blue: must be from 0 to 100; got 110"),
		},
		{
			name: "traffic key that is not a deployment name",
			file: "endpoint.yml",
			src:  "name: my-endpoint\ntraffic:\n  b: 100\n",
			want: "endpoint.yml:3:6: traffic.b: The name for a deployment must be at least 3 and at most 32 characters long (inclusive of both limits).",
		},
		{
			name: "traffic keys differing only in case",
			file: "endpoint.yml",
			src:  "name: my-endpoint\ntraffic:\n  blue: 50\n  Blue: 50\n",
			want: "endpoint.yml:4:3: traffic.Blue: names are case-insensitive and blue is already set at line 3",
		},
		{
			name: "mirror 60 percent",
			file: "endpoint.yml",
			src:  "name: my-endpoint\ntraffic:\n  blue: 100\nmirror_traffic:\n  green: 60\n",
			want: "endpoint.yml:5:10: mirror_traffic.green: Only one key will be accepted and value needs to be less than or equal to 50%; got 60",
		},
		{
			name: "mirror to two deployments",
			file: "endpoint.yml",
			src:  "name: my-endpoint\nmirror_traffic:\n  green: 10\n  red: 10\n",
			want: "endpoint.yml:2:1: mirror_traffic: Only one key will be accepted and value needs to be less than or equal to 50%; got green=10 red=10",
		},
		{
			name: "mirror target with live traffic",
			file: "endpoint.yml",
			src:  "name: my-endpoint\ntraffic:\n  blue: 90\n  green: 10\nmirror_traffic:\n  green: 10\n",
			want: "endpoint.yml:6:10: mirror_traffic.green: a deployment can receive only live traffic or mirrored traffic, not both; traffic.green is 10",
		},
		{
			name: "unknown key with a suggestion",
			file: "deployment.yml",
			src:  okDeployment + "request_settings:\n  request_timout_ms: 3000\n",
			want: "deployment.yml:9:3: request_settings.request_timout_ms: unknown field; did you mean request_timeout_ms?",
		},
		{
			name: "unknown top-level key in camelCase",
			file: "deployment.yml",
			src:  okDeployment + "instanceCount: 2\n",
			want: "deployment.yml:8:1: instanceCount: unknown field; did you mean instance_count?",
		},
		{
			name: "unknown key without a close match lists a small block's fields",
			file: "deployment.yml",
			src:  okDeployment + "code_configuration:\n  code: src\n  scoring_script: plumber.R\n  entry: x\n",
			want: "deployment.yml:11:3: code_configuration.entry: unknown field; expected one of code, scoring_script",
		},
		{
			name: "unknown key inside the endpoint's plumbline block",
			file: "endpoint.yml",
			src:  "name: my-endpoint\nplumbline:\n  canary: true\n",
			opts: ParseOptions{Expect: KindEndpoint},
			want: "endpoint.yml:3:3: plumbline.canary: unknown field; expected one of compare",
		},
		{
			name: "string for request_timeout_ms",
			file: "deployment.yml",
			src:  okDeployment + "liveness_probe:\n  period: 5\nrequest_settings:\n    max_queue_wait_ms: 100\n    request_timeout_ms: abc\n",
			want: `deployment.yml:12:25: request_settings.request_timeout_ms: expected an integer (milliseconds), got string "abc"`,
		},
		{
			name: "float for instance_count",
			file: "deployment.yml",
			src:  strings.Replace(okDeployment, "instance_count: 1", "instance_count: 1.5", 1),
			want: "deployment.yml:7:17: instance_count: expected an integer, got number 1.5",
		},
		{
			name: "mapping for a string",
			file: "endpoint.yml",
			src:  "name:\n  first: my\n",
			opts: ParseOptions{Expect: KindEndpoint},
			want: "endpoint.yml:2:3: name: expected a string, got a mapping",
		},
		{
			name: "list for a mapping",
			file: "deployment.yml",
			src:  okDeployment + "environment_variables:\n  - A=1\n",
			want: "deployment.yml:9:3: environment_variables: expected a mapping (key: value), got a list",
		},
		{
			name: "bool wanted",
			file: "deployment.yml",
			src:  okDeployment + "app_insights_enabled: maybe\n",
			want: `deployment.yml:8:23: app_insights_enabled: expected a boolean (true or false), got string "maybe"`,
		},
		{
			name: "negative instance_count",
			file: "deployment.yml",
			src:  strings.Replace(okDeployment, "instance_count: 1", "instance_count: -1", 1),
			want: "deployment.yml:7:17: instance_count: must be at least 1; got -1",
		},
		{
			name: "broken YAML syntax (scanner)",
			file: "deployment.yml",
			src:  "name: blue\nendpoint_name: a: b\n",
			want: "deployment.yml:2: invalid YAML: mapping values are not allowed in this context",
		},
		{
			name: "broken YAML syntax on line 1",
			file: "deployment.yml",
			src:  "name: a: b\n",
			want: "deployment.yml:1: invalid YAML: mapping values are not allowed in this context",
		},
		{
			name: "broken YAML syntax (parser, line corrected)",
			file: "deployment.yml",
			src:  "name: blue\nendpoint_name: e1x\ntags: [a, b\n",
			want: "deployment.yml:3: invalid YAML: did not find expected ',' or ']'",
		},
		{
			name: "tab indentation",
			file: "deployment.yml",
			src:  "name: blue\n\tendpoint_name: x\n",
			want: "deployment.yml:2: invalid YAML: found a tab character that violates indentation",
		},
		{
			name: "unknown anchor",
			file: "endpoint.yml",
			src:  "name: *nope\n",
			want: "endpoint.yml: invalid YAML: unknown anchor 'nope' referenced",
		},
		{
			name: "empty file",
			file: "endpoint.yml",
			src:  "",
			want: "endpoint.yml: the file is empty; expected a mapping of fields (name: …)",
		},
		{
			name: "comments only",
			file: "endpoint.yml",
			src:  "# nothing here\n",
			want: "endpoint.yml: the file is empty; expected a mapping of fields (name: …)",
		},
		{
			name: "empty document marker",
			file: "endpoint.yml",
			src:  "---\n",
			want: "endpoint.yml: the file is empty; expected a mapping of fields (name: …)",
		},
		{
			name: "two documents",
			file: "all.yml",
			src:  "name: my-endpoint\n---\nname: blue\n",
			want: "all.yml:2: the file holds more than one YAML document (---); put each endpoint, deployment, model or environment in its own file",
		},
		{
			name: "list at the top",
			file: "endpoint.yml",
			src:  "- name: my-endpoint\n",
			want: "endpoint.yml:1:1: the top level must be a mapping of fields (name: …), got a list",
		},
		{
			name: "scalar at the top",
			file: "endpoint.yml",
			src:  "hello\n",
			want: `endpoint.yml:1:1: the top level must be a mapping of fields (name: …), got string "hello"`,
		},
		{
			name: "duplicate key",
			file: "endpoint.yml",
			src:  "name: my-endpoint\nauth_mode: key\nname: other\n",
			want: "endpoint.yml:3:1: name: duplicate key (first set at line 1); keep one",
		},
		{
			name: "duplicate nested key",
			file: "deployment.yml",
			src:  okDeployment + "request_settings:\n  request_timeout_ms: 1\n  request_timeout_ms: 2\n",
			want: "deployment.yml:10:3: request_settings.request_timeout_ms: duplicate key (first set at line 9); keep one",
		},
		{
			name: "complex key",
			file: "endpoint.yml",
			src:  "? [a, b]\n: 1\n",
			want: "endpoint.yml:1:3: a key must be a plain word (name:), got a list",
		},
		{
			name: "undetectable kind",
			file: "thing.yml",
			src:  "name: x\n",
			want: "thing.yml: cannot tell whether this is an endpoint, deployment, model or environment file; add $schema, for example $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json",
		},
		{
			name: "foreign schema",
			file: "job.yml",
			src:  "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\nname: x\n",
			want: `job.yml:1:10: $schema: "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json" is not an online endpoint, online deployment, model or environment schema`,
		},
		{
			name: "schema contradicts the expected kind",
			file: "endpoint.yml",
			src:  okDeployment,
			opts: ParseOptions{Expect: KindEndpoint},
			want: "endpoint.yml:1:10: $schema: this is a deployment file ($schema managedOnlineDeployment.schema.json), but an endpoint file was expected",
		},
		{
			name: "conda keys in an environment",
			file: "env.yml",
			src:  "name: my-env\nimage: python:3.12\ndependencies:\n  - numpy\n",
			opts: ParseOptions{Expect: KindEnvironment},
			want: "env.yml:3:1: dependencies: conda keys (channels, dependencies) cannot appear in an environment; this looks like a conda file: put the conda specification in its own file and reference it with conda_file: <file>",
		},
		{
			name: "missing required fields",
			file: "deployment.yml",
			src:  "name: blue\nendpoint_name: my-endpoint\n",
			opts: ParseOptions{Expect: KindDeployment},
			want: lines(
				"deployment.yml: environment: missing; set an environment: azureml:<name>:<version>, or inline with image and inference_config",
				"deployment.yml: instance_type: missing; a managed deployment needs a size such as Standard_DS3_v2",
				"deployment.yml: instance_count: missing; a managed deployment needs instance_count (1 or more), or scale_settings type target_utilization"),
		},
		{
			name: "missing field inside a block points at the block",
			file: "deployment.yml",
			src:  okDeployment + "code_configuration:\n  code: ./src\n",
			want: "deployment.yml:8:1: code_configuration.scoring_script: missing; set the entry script's path inside code (for example plumber.R or score.py)",
		},
		{
			name: "bad model reference",
			file: "deployment.yml",
			src:  strings.Replace(okDeployment, "model: azureml:my-model:1", "model: \"azureml:my-model:\"", 1),
			want: `deployment.yml:4:8: model: "azureml:my-model:": version "": a version is letters, digits, '.', '_' and '-', starting with a letter or digit`,
		},
		{
			name: "model given as a URI",
			file: "deployment.yml",
			src:  strings.Replace(okDeployment, "model: azureml:my-model:1", "model: https://example.com/m.rds", 1),
			want: `deployment.yml:4:8: model: "https://example.com/m.rds" is a URI, not a model reference; write azureml:<name>:<version>, azureml:<name>@latest or azureml://registries/<registry>/models/<name>/versions/<version>, or an inline model with path: <uri>`,
		},
		{
			name: "environment as a list",
			file: "deployment.yml",
			src:  strings.Replace(okDeployment, "environment: azureml:my-env:1", "environment: [a]", 1),
			want: "deployment.yml:5:14: environment: expected an environment reference (azureml:<name>:<version>) or an inline environment (image, inference_config…), got a list",
		},
		{
			name: "enum with a suggestion",
			file: "endpoint.yml",
			src:  "name: my-endpoint\nauth_mode: aml_tokn\n",
			want: `endpoint.yml:2:12: auth_mode: must be one of key, aml_token, aad_token; got "aml_tokn"; did you mean aml_token?`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errText(t, tt.file, tt.src, tt.opts)
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestSchemaDetection(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Kind
	}{
		{"managed endpoint schema", "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\nname: my-endpoint\n", KindEndpoint},
		{"kubernetes endpoint schema", "$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineEndpoint.schema.json\nname: my-endpoint\n", KindEndpoint},
		{"blob host schema", "$schema: https://azuremlsdk2.blob.core.windows.net/latest/managedOnlineEndpoint.schema.json\nname: my-endpoint\n", KindEndpoint},
		{"model schema", "$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\nname: m\npath: x\n", KindModel},
		{"environment schema", "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\nname: e\nimage: x\n", KindEnvironment},
		{"deployment by endpoint_name", "name: blue\nendpoint_name: my-endpoint\nenvironment: azureml:e:1\ninstance_type: Standard_F2s_v2\ninstance_count: 1\n", KindDeployment},
		{"endpoint by auth_mode", "name: my-endpoint\nauth_mode: key\n", KindEndpoint},
		{"endpoint by traffic", "name: my-endpoint\ntraffic: {blue: 100}\n", KindEndpoint},
		{"conda by dependencies", "name: env\nchannels: [conda-forge]\ndependencies: [python=3.12, {pip: [x]}]\n", KindConda},
		{"environment by image", "name: e\nimage: python:3.12\n", KindEnvironment},
		{"environment by build", "name: e\nbuild: {path: ctx}\n", KindEnvironment},
		{"model by name and path", "name: m\npath: ./m.rds\n", KindModel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := mustParse(t, "f.yml", tt.src, ParseOptions{})
			if doc.Kind != tt.want {
				t.Errorf("got kind %q, want %q", doc.Kind, tt.want)
			}
		})
	}
}

func TestJSONInput(t *testing.T) {
	src := "{\n\t\"name\": \"my-endpoint\",\n\t\"auth_mode\": \"AMLToken\",\n\t\"traffic\": {\"Blue\": 100}\n}"
	doc := mustParse(t, "endpoint.json", src, ParseOptions{Expect: KindEndpoint})
	want := &Endpoint{Name: "my-endpoint", AuthMode: "aml_token", Traffic: map[string]int{"blue": 100}}
	if diff := cmp.Diff(want, doc.Endpoint); diff != "" {
		t.Errorf("endpoint (-want +got):\n%s", diff)
	}

	bad := "{\n  \"name\": \"blue\",\n  \"endpoint_name\": \"my-endpoint\",\n  \"request_settings\": {\"request_timeout_ms\": \"soon\"}\n}"
	got := errText(t, "body", bad, ParseOptions{Expect: KindDeployment})
	want2 := `body:4:46: request_settings.request_timeout_ms: expected an integer (milliseconds), got string "soon"`
	if got != want2 {
		t.Errorf("got %s\nwant %s", got, want2)
	}
	// Numbers written as JSON strings are accepted where Azure's schema
	// library accepts them.
	doc = mustParse(t, "body", `{"name": "blue", "endpoint_name": "e12", "environment": "azureml:e:1", "instance_type": "Standard_DS3_v2", "instance_count": "3"}`, ParseOptions{})
	if got := *doc.Deployment.InstanceCount; got != 3 {
		t.Errorf("instance_count: got %d, want 3", got)
	}
}

func TestNotices(t *testing.T) {
	src := `name: my-endpoint
auth_mode: key
provisioning_state: Succeeded
identity:
  type: system_assigned
  principal_id: 0000
public_network_access: disabled
scoring_uri: https://my-endpoint.westeurope.inference.ml.azure.com/score
`
	doc := mustParse(t, "endpoint.yml", src, ParseOptions{})
	var got []string
	for _, n := range doc.Notices {
		got = append(got, n.String())
	}
	want := []string{
		"endpoint.yml:3: provisioning_state is a read-only field (set by the server, shown by show) and is ignored",
		"endpoint.yml:4: identity is accepted for Azure compatibility and ignored by plumbline",
		"endpoint.yml:6: identity.principal_id is a read-only field (set by the server, shown by show) and is ignored",
		"endpoint.yml:7: public_network_access is accepted for Azure compatibility and ignored by plumbline",
		"endpoint.yml:8: scoring_uri is a read-only field (set by the server, shown by show) and is ignored",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("notices (-want +got):\n%s", diff)
	}

	dep := okDeployment + `egress_public_network_access: disabled
private_network_connection: false
app_insights_enabled: true
data_collector:
  collections:
    request: {enabled: 'True'}
    response: {enabled: 'True'}
`
	doc = mustParse(t, "deployment.yml", dep, ParseOptions{})
	got = nil
	for _, n := range doc.Notices {
		got = append(got, n.String())
	}
	want = []string{
		"deployment.yml:8: egress_public_network_access is accepted for Azure compatibility and ignored by plumbline",
		"deployment.yml:9: private_network_connection is accepted for Azure compatibility and ignored by plumbline",
		"deployment.yml:10: app_insights_enabled is accepted for Azure compatibility and ignored by plumbline",
		"deployment.yml:11: data_collector is accepted for Azure compatibility and ignored by plumbline",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("notices (-want +got):\n%s", diff)
	}
	wantDC := DataCollector{"collections": map[string]any{
		"request": map[string]any{"enabled": "True"}, "response": map[string]any{"enabled": "True"}}}
	if diff := cmp.Diff(wantDC, doc.Deployment.DataCollector); diff != "" {
		t.Errorf("data_collector (-want +got):\n%s", diff)
	}
}

func TestWarnings(t *testing.T) {
	src := strings.Replace(okDeployment, "Standard_DS3_v2", "Standard_Z99", 1) + "code_configuration:\n  code: ./nowhere\n  scoring_script: score.py\n"
	doc := mustParse(t, "deployment.yml", src, ParseOptions{BaseDir: "/base"})
	var got []string
	for _, n := range doc.Warnings {
		got = append(got, n.String())
	}
	want := []string{
		"deployment.yml:6: instance_type Standard_Z99: plumbline has no size for this instance type; instances run without CPU and memory limits",
		"deployment.yml:9: code_configuration.code: local path /base/nowhere does not exist",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestYAMLFeatures(t *testing.T) {
	// Anchors, aliases and merge keys work as in any YAML loader; explicit
	// keys win over merged ones.
	src := `$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
environment: azureml:my-env:1
instance_type: Standard_DS3_v2
instance_count: 1
liveness_probe: &probe
  period: 5
  timeout: 3
readiness_probe:
  <<: *probe
  timeout: 4
`
	doc := mustParse(t, "deployment.yml", src, ParseOptions{})
	want := &ProbeSettings{Period: intp(5), Timeout: intp(4)}
	if diff := cmp.Diff(want, doc.Deployment.ReadinessProbe); diff != "" {
		t.Errorf("readiness_probe (-want +got):\n%s", diff)
	}

	// Self-referencing and exponential aliases fail cleanly.
	if got := errText(t, "x.yml", "name: &a [*a]\n", ParseOptions{Expect: KindEndpoint}); !strings.Contains(got, "refers to a value that contains it") {
		t.Errorf("recursive alias: got %q", got)
	}
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n" +
		"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
	if got := errText(t, "x.yml", bomb, ParseOptions{Expect: KindEndpoint}); !strings.Contains(got, "expands to more than") {
		t.Errorf("alias bomb: got %q", got)
	}
}
