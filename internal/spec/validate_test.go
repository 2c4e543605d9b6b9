package spec

import (
	"strings"
	"testing"
)

const k8sDeployment = `$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json
name: blue
type: kubernetes
endpoint_name: my-endpoint
environment: azureml:my-env:1
`

// TestDeploymentRules covers each validation rule of a deployment. want ""
// means the document is valid.
func TestDeploymentRules(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"valid managed", okDeployment, ""},
		{"managed with 50 instances", strings.Replace(okDeployment, "instance_count: 1", "instance_count: 50", 1), ""},
		{"managed with 51 instances", strings.Replace(okDeployment, "instance_count: 1", "instance_count: 51", 1),
			"deployment.yml:7:17: instance_count: must be at most 50 for a managed deployment (Azure's limit); got 51"},
		{"zero instances", strings.Replace(okDeployment, "instance_count: 1", "instance_count: 0", 1),
			"deployment.yml:7:17: instance_count: must be at least 1; got 0"},
		{"kubernetes autoscaled needs no instance_count", k8sDeployment, ""},
		{"kubernetes with many instances", k8sDeployment + "instance_count: 80\nscale_settings:\n  type: default\n", ""},
		{"kubernetes scale default needs instance_count", k8sDeployment + "scale_settings:\n  type: default\n",
			"deployment.yml: instance_count: missing; scale_settings type default needs instance_count (1 or more)"},
		{"type contradicts schema", strings.Replace(k8sDeployment, "type: kubernetes", "type: managed", 1) + "instance_type: Standard_DS3_v2\ninstance_count: 1\n",
			`deployment.yml:3:7: type: type managed contradicts $schema "https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json"; remove one`},
		{"unknown type", strings.Replace(k8sDeployment, "type: kubernetes", "type: kubernets", 1),
			`deployment.yml:3:7: type: must be one of managed, kubernetes; got "kubernets"; did you mean kubernetes?`},
		{"request timeout zero", okDeployment + "request_settings:\n  request_timeout_ms: 0\n",
			"deployment.yml:9:23: request_settings.request_timeout_ms: must be from 1 to 180000 (180 s, the limit for managed deployments); got 0"},
		{"request timeout above managed limit", okDeployment + "request_settings:\n  request_timeout_ms: 180001\n",
			"deployment.yml:9:23: request_settings.request_timeout_ms: must be from 1 to 180000 (180 s, the limit for managed deployments); got 180001"},
		{"request timeout at kubernetes limit", k8sDeployment + "request_settings:\n  request_timeout_ms: 300000\n", ""},
		{"request timeout above kubernetes limit", k8sDeployment + "request_settings:\n  request_timeout_ms: 300001\n",
			"deployment.yml:7:23: request_settings.request_timeout_ms: must be from 1 to 300000 (300 s, the limit for Kubernetes deployments); got 300001"},
		{"zero concurrency", okDeployment + "request_settings:\n  max_concurrent_requests_per_instance: 0\n",
			"deployment.yml:9:41: request_settings.max_concurrent_requests_per_instance: must be at least 1; got 0"},
		{"negative queue wait", okDeployment + "request_settings:\n  max_queue_wait_ms: -1\n",
			"deployment.yml:9:22: request_settings.max_queue_wait_ms: must be 0 or more; got -1"},
		{"zero queue wait", okDeployment + "request_settings:\n  max_queue_wait_ms: 0\n", ""},
		{"probe initial delay zero means at once", okDeployment + "readiness_probe:\n  initial_delay: 0\n", ""},
		{"negative initial delay", okDeployment + "readiness_probe:\n  initial_delay: -1\n",
			"deployment.yml:9:18: readiness_probe.initial_delay: must be 0 or more seconds; got -1"},
		{"zero period", okDeployment + "liveness_probe:\n  period: 0\n",
			"deployment.yml:9:11: liveness_probe.period: must be at least 1; got 0"},
		{"zero timeout", okDeployment + "liveness_probe:\n  timeout: 0\n",
			"deployment.yml:9:12: liveness_probe.timeout: must be at least 1; got 0"},
		{"zero failure threshold", okDeployment + "readiness_probe:\n  failure_threshold: 0\n",
			"deployment.yml:9:22: readiness_probe.failure_threshold: must be at least 1; got 0"},
		{"liveness success threshold is fixed", okDeployment + "liveness_probe:\n  success_threshold: 2\n",
			"deployment.yml:9:22: liveness_probe.success_threshold: must be 1 for a liveness probe (Azure fixes it at 1); got 2"},
		{"readiness success threshold may be higher", okDeployment + "readiness_probe:\n  success_threshold: 2\n", ""},
		{"readiness success threshold zero", okDeployment + "readiness_probe:\n  success_threshold: 0\n",
			"deployment.yml:9:22: readiness_probe.success_threshold: must be at least 1; got 0"},
		{"target utilization on managed", okDeployment + "scale_settings:\n  type: target_utilization\n",
			"deployment.yml:9:9: scale_settings.type: target_utilization is for Kubernetes deployments only; a managed deployment takes type default and a fixed instance_count"},
		{"autoscale fields with type default", okDeployment + "scale_settings:\n  type: default\n  max_instances: 3\n",
			"deployment.yml:10:18: scale_settings.max_instances: applies only to scale_settings type target_utilization; with type default, set instance_count"},
		{"max below min", k8sDeployment + "scale_settings:\n  type: target_utilization\n  min_instances: 3\n  max_instances: 2\n",
			"deployment.yml:9:18: scale_settings.max_instances: must be at least min_instances (3); got 2"},
		{"utilization above 100", k8sDeployment + "scale_settings:\n  target_utilization_percentage: 101\n",
			"deployment.yml:7:34: scale_settings.target_utilization_percentage: must be from 1 to 100; got 101"},
		{"resources on managed", okDeployment + "resources:\n  requests:\n    cpu: \"1\"\n",
			"deployment.yml:8:1: resources: resources is for Kubernetes deployments (type: kubernetes) only; a managed deployment is sized by instance_type"},
		{"requests greater than limits", k8sDeployment + "resources:\n  requests:\n    cpu: \"0.5\"\n    memory: 1Gi\n  limits:\n    cpu: 200m\n    memory: 2Gi\n",
			`deployment.yml:8:10: resources.requests.cpu: Resource requests greater than limits: requests 0.5 > limits 200m`},
		{"memory requests greater than limits", k8sDeployment + "resources:\n  requests:\n    memory: 0.5Gi\n  limits:\n    memory: 200Mi\n",
			`deployment.yml:8:13: resources.requests.memory: Resource requests greater than limits: requests 0.5Gi > limits 200Mi`},
		{"bad quantity", k8sDeployment + "resources:\n  limits:\n    memory: lots\n",
			`deployment.yml:8:13: resources.limits.memory: memory "lots" is not a quantity (for example 512Mi or 1Gi)`},
		{"gpu", k8sDeployment + "resources:\n  requests:\n    nvidia.com/gpu: 1\n  limits:\n    nvidia.com/gpu: 1\n", ""},
		{"relative model_mount_path", okDeployment + "model_mount_path: models\n",
			`deployment.yml:8:19: model_mount_path: must be an absolute Linux path (starting with /); got "models"`},
		{"absolute model_mount_path", okDeployment + "model_mount_path: /models\n", ""},
		{"scoring script outside code", okDeployment + "code_configuration:\n  code: src\n  scoring_script: ../x.R\n",
			`deployment.yml:10:19: code_configuration.scoring_script: must be a path inside code_configuration.code; got "../x.R"`},
		{"environment variable values are text", okDeployment + "environment_variables:\n  WORKERS: 4\n  DEBUG: true\n  EMPTY:\n", ""},
		{"bad egress value", okDeployment + "egress_public_network_access: off\n",
			`deployment.yml:8:31: egress_public_network_access: must be one of enabled, disabled; got "off"`},
		{"endpoint_name missing", strings.Replace(okDeployment, "endpoint_name: my-endpoint\n", "", 1),
			""}, // a warning (see TestEndpointNameMissingIsAWarning): Azure's samples pass --endpoint-name

		{"inline model without path", strings.Replace(okDeployment, "model: azureml:my-model:1\n", "model:\n  name: m\n", 1),
			"deployment.yml:4:1: model.path: missing; set the model's local file or folder (or a URI)"},
		{"inline model with bad type", strings.Replace(okDeployment, "model: azureml:my-model:1\n", "model:\n  path: m\n  type: mlflow\n", 1),
			`deployment.yml:6:9: model.type: must be one of custom_model, mlflow_model, triton_model; got "mlflow"; did you mean mlflow_model?`},
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

// TestEnvironmentRules covers an environment, inline in a deployment and
// on its own.
func TestEnvironmentRules(t *testing.T) {
	inline := func(env string) string {
		return strings.Replace(okDeployment, "environment: azureml:my-env:1\n", "environment:\n"+env, 1)
	}
	routes := "  inference_config:\n    liveness_route: {port: 8000, path: /live}\n    readiness_route: {port: 8000, path: /ready}\n    scoring_route: {port: 8000, path: /score}\n"
	tests := []struct {
		name string
		file string
		src  string
		want string
	}{
		{"image with routes", "deployment.yml", inline("  image: rstudio/plumber\n" + routes), ""},
		{"nothing to run", "deployment.yml", inline("  name: e\n"),
			"deployment.yml:5:1: environment: one of image, build or plumbline.command is required"},
		{"image and build", "deployment.yml", inline("  image: x\n  build:\n    path: ctx\n"),
			"deployment.yml:7:3: environment.build: image and build cannot both be set; use the image, or build one from the context"},
		{"conda without image", "deployment.yml", inline("  build: {path: ctx}\n  conda_file: conda.yml\n"),
			"deployment.yml:7:15: environment.conda_file: conda_file requires image: the conda environment is created on top of it"},
		{"missing route", "deployment.yml", inline("  image: x\n  inference_config:\n    liveness_route: {port: 8000, path: /live}\n    scoring_route: {port: 8000, path: /score}\n"),
			"deployment.yml:7:3: environment.inference_config.readiness_route: missing; inference_config needs liveness_route, readiness_route and scoring_route, each with port and path"},
		{"route without port", "deployment.yml", inline(strings.Replace("  image: x\n"+routes, "{port: 8000, path: /ready}", "{path: /ready}", 1)),
			"deployment.yml:9:5: environment.inference_config.readiness_route.port: missing; set the container port (1-65535)"},
		{"route port too big", "deployment.yml", inline(strings.Replace("  image: x\n"+routes, "{port: 8000, path: /ready}", "{port: 80000, path: /ready}", 1)),
			"deployment.yml:9:29: environment.inference_config.readiness_route.port: must be from 1 to 65535; got 80000"},
		{"route path without slash", "deployment.yml", inline(strings.Replace("  image: x\n"+routes, "path: /score", "path: score", 1)),
			`deployment.yml:10:39: environment.inference_config.scoring_route.path: must start with /; got "score"`},
		{"generic runtime", "deployment.yml", inline("  plumbline:\n    runtime: generic\n    command: [python, -m, server, --port, \"{port}\"]\n"), ""},
		{"generic runtime without command", "deployment.yml", inline("  image: x\n  plumbline:\n    runtime: generic\n"),
			`deployment.yml:7:3: environment.plumbline.command: missing; runtime generic needs the server's command line, for example [python, serve.py, --port, "{port}"]`},
		{"runtime typo", "deployment.yml", inline("  image: x\n  plumbline:\n    runtime: plumbr\n"),
			`deployment.yml:8:14: environment.plumbline.runtime: must be one of plumber, generic; got "plumbr"; did you mean plumber?`},
		{"unknown extension key", "deployment.yml", inline("  image: x\n  plumbline:\n    comand: [x]\n"),
			"deployment.yml:8:5: environment.plumbline.comand: unknown field; did you mean command?"},
		{"os_type", "deployment.yml", inline("  image: x\n  os_type: macos\n"),
			`deployment.yml:7:12: environment.os_type: must be one of linux, windows; got "macos"`},
		{"inline conda", "deployment.yml", inline("  image: x\n  conda_file:\n    channels: [conda-forge]\n    dependencies: [python=3.12]\n"), ""},
		{"inline conda with bad dependencies", "deployment.yml", inline("  image: x\n  conda_file:\n    dependencies: numpy\n"),
			"deployment.yml:8:19: environment.conda_file.dependencies: expected a list of packages (and optionally pip: [...])"},
		{"environment file without name", "environment.yml", "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\nimage: x\n",
			"environment.yml: name: missing; an environment needs a name (letters, digits, '-', '_', '.')"},
		{"environment file", "environment.yml", "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\nname: r-env\nversion: 2\nbuild:\n  path: ./docker-context\n", ""},
		{"conda file with bad dependencies", "conda.yml", "name: x\nchannels: [a]\ndependencies: numpy\n",
			"conda.yml:3:15: dependencies: expected a list of packages (and optionally pip: [...])"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errText(t, tt.file, tt.src, ParseOptions{})
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestEndpointAndModelRules(t *testing.T) {
	tests := []struct {
		name string
		file string
		src  string
		want string
	}{
		{"kubernetes sample's capitalised Key", "endpoint.yml", "name: my-endpoint\ncompute: azureml:inferencecompute\nauth_mode: Key\n", ""},
		{"aad_token on kubernetes", "endpoint.yml", "name: my-endpoint\ncompute: azureml:inferencecompute\nauth_mode: aad_token\n",
			"endpoint.yml:3:12: auth_mode: aad_token works only for managed endpoints; a Kubernetes endpoint takes key or aml_token"},
		{"two user-assigned identities", "endpoint.yml", "name: my-endpoint\nidentity:\n  type: user_assigned\n  user_assigned_identities:\n    - resource_id: a\n    - resource_id: b\n",
			"endpoint.yml:4:3: identity.user_assigned_identities: Only 1 user assigned identity is currently supported"},
		{"user_assigned without identity", "endpoint.yml", "name: my-endpoint\nidentity:\n  type: UserAssigned\n",
			"endpoint.yml:2:1: identity.user_assigned_identities: missing; type user_assigned needs one identity (resource_id)"},
		{"identity without resource_id", "endpoint.yml", "name: my-endpoint\nidentity:\n  type: user_assigned\n  user_assigned_identities:\n    - client_id: a\n",
			"endpoint.yml:5:7: identity.user_assigned_identities.0.resource_id: missing; set the identity's ARM resource id"},
		{"bad public_network_access", "endpoint.yml", "name: my-endpoint\npublic_network_access: open\n",
			`endpoint.yml:2:24: public_network_access: must be one of enabled, disabled; got "open"`},
		{"endpoint without name", "endpoint.yml", "auth_mode: key\n",
			"endpoint.yml: name: missing; an endpoint needs a name (3-32 characters: letters, digits and '-', starting with a letter)"},
		{"model file", "model.yml", "name: my.model_1\nversion: 3\npath: ./m\ntype: TritonModel\n", ""},
		{"model without name", "model.yml", "$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\npath: ./m\n",
			"model.yml: name: missing; a model needs a name (letters, digits, '-', '_', '.')"},
		{"model with bad name", "model.yml", "name: -m\npath: ./m\n",
			"model.yml:1:7: name: The name for a model must be 1 to 255 characters long, start with a letter or digit and only consist of letters, digits, '-', '_' and '.'."},
		{"model with bad version", "model.yml", "name: m\nversion: 1/2\npath: ./m\n",
			`model.yml:2:10: version: version "1/2": a version is letters, digits, '.', '_' and '-', starting with a letter or digit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errText(t, tt.file, tt.src, ParseOptions{})
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestNormalisation(t *testing.T) {
	doc := mustParse(t, "endpoint.yml", "name: my-endpoint\ncompute: azureml:c\nauth_mode: Key\nidentity: {type: SystemAssigned}\n", ParseOptions{})
	if got := doc.Endpoint.AuthMode; got != "key" {
		t.Errorf("auth_mode: got %q, want key", got)
	}
	if got := doc.Endpoint.Identity.Type; got != "system_assigned" {
		t.Errorf("identity.type: got %q, want system_assigned", got)
	}
	doc = mustParse(t, "model.yml", "name: m\nversion: 3\npath: ./m\ntype: TritonModel\n", ParseOptions{})
	if doc.Model.Type != "triton_model" || doc.Model.Version != "3" {
		t.Errorf("model: got type %q version %q", doc.Model.Type, doc.Model.Version)
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		kind, name string
		ok         bool
	}{
		{"endpoint", "abc", true},
		{"endpoint", "my-endpoint-name", true},
		{"endpoint", "a--b", true}, // the regex allows double dashes
		{"endpoint", "ab", false},
		{"endpoint", "abc-", false},
		{"endpoint", "-abc", false},
		{"endpoint", "ab_c", false},
		{"endpoint", strings.Repeat("a", 32), true},
		{"endpoint", strings.Repeat("a", 33), false},
		{"deployment", "Blue", true},
		{"model", "m", true},
		{"model", "1.model_x-y", true},
		{"model", "_m", false},
		{"model", strings.Repeat("m", 256), false},
		{"environment", "AzureML-sklearn-1.0", true},
	}
	for _, tt := range tests {
		err := ValidateName(tt.kind, tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q, %q) = %v, want ok=%v", tt.kind, tt.name, err, tt.ok)
		}
	}
}

func TestParseTraffic(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]int
		err  string
	}{
		{"spaces", "blue=90 green=10", map[string]int{"blue": 90, "green": 10}, ""},
		{"commas", "blue=90,green=10", map[string]int{"blue": 90, "green": 10}, ""},
		{"upper case", "Blue=100", map[string]int{"blue": 100}, ""},
		{"empty", "", map[string]int{}, ""},
		{"mirror off", "green=0", map[string]int{"green": 0}, ""},
		{"not a number", "blue=90 green=ten", nil, `traffic: "green=ten": the percentage must be an integer from 0 to 100`},
		{"above 100", "blue=101", nil, `traffic: "blue=101": the percentage must be an integer from 0 to 100`},
		{"negative", "blue=-1", nil, `traffic: "blue=-1": the percentage must be an integer from 0 to 100`},
		{"no equals", "blue", nil, `traffic: "blue": expected deployment=percent, for example blue=90`},
		{"twice", "blue=50 BLUE=50", nil, `traffic: "BLUE=50": blue is given twice`},
		{"bad name", "b=100", nil, `traffic: "b=100": The name for a deployment must be at least 3 and at most 32 characters long (inclusive of both limits).`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTraffic(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("got error %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if FormatTraffic(got) != FormatTraffic(tt.want) || len(got) != len(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInstanceTypeResources(t *testing.T) {
	tests := []struct {
		sku  string
		cpu  float64
		mem  int64
		okay bool
	}{
		{"Standard_DS3_v2", 4, 14 << 30, true},
		{"standard_ds2_v2", 2, 7 << 30, true},
		{"STANDARD_DS1_V2", 1, 3584 << 20, true},
		{"Standard_F4s_v2", 4, 8 << 30, true},
		{"Standard_F72s_v2", 72, 144 << 30, true},
		{"Standard_E4s_v3", 4, 32 << 30, true},
		{"Standard_D8as_v4", 8, 32 << 30, true},
		{"defaultinstancetype", 0, 0, false},
	}
	for _, tt := range tests {
		cpu, mem, ok := InstanceTypeResources(tt.sku)
		if cpu != tt.cpu || mem != tt.mem || ok != tt.okay {
			t.Errorf("InstanceTypeResources(%q) = %v, %d, %v; want %v, %d, %v", tt.sku, cpu, mem, ok, tt.cpu, tt.mem, tt.okay)
		}
	}
}

func TestQuantities(t *testing.T) {
	cpus := map[string]float64{"1": 1, "0.1": 0.1, "100m": 0.1, "2.5": 2.5, ".5": 0.5}
	for in, want := range cpus {
		if got, err := ParseCPU(in); err != nil || got != want {
			t.Errorf("ParseCPU(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	mems := map[string]int64{"200Mi": 200 << 20, "1Gi": 1 << 30, "1G": 1e9, "512Ki": 512 << 10, "1000": 1000, "1e3": 1000, "0.5Gi": 1 << 29}
	for in, want := range mems {
		if got, err := ParseMemory(in); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "1Qi", "-1", "1e999"} {
		if _, err := ParseMemory(bad); err == nil {
			t.Errorf("ParseMemory(%q): no error", bad)
		}
	}
	if _, err := ParseCPU("1Ki"); err == nil {
		t.Error("ParseCPU(1Ki): no error")
	}
}

func TestEndpointNameMissingIsAWarning(t *testing.T) {
	doc, err := Parse("deployment.yml", []byte(strings.Replace(okDeployment, "endpoint_name: my-endpoint\n", "", 1)), ParseOptions{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var got []string
	for _, w := range doc.Warnings {
		got = append(got, w.String())
	}
	want := "deployment.yml:2: endpoint_name is not set: give it with --endpoint-name when you create the deployment"
	if len(got) == 0 || got[0] != want {
		t.Errorf("got warnings %q, want %q first", got, want)
	}
}

// TestDeploymentExtension covers the deployment's plumbline: block, the
// lean R runtime's settings.
func TestDeploymentExtension(t *testing.T) {
	with := func(block string) string { return okDeployment + "plumbline:\n" + block }
	tests := []struct {
		name, src, want string
	}{
		{"all set", with("  r_runtime: lean\n  workers: 4\n  max_requests_per_worker: 1000\n  max_worker_memory: 2Gi\n"), ""},
		{"plumber's own server", with("  r_runtime: PLUMBER\n"), ""},
		{"runtime typo", with("  r_runtime: leen\n"), `deployment.yml:9:14: plumbline.r_runtime: must be one of lean, plumber; got "leen"; did you mean lean?`},
		{"no workers", with("  workers: 0\n"), "deployment.yml:9:12: plumbline.workers: must be from 1 to 256 (R worker processes per instance); got 0"},
		{"negative recycling", with("  max_requests_per_worker: -1\n"), "deployment.yml:9:28: plumbline.max_requests_per_worker: must be 0 (never recycle) or more; got -1"},
		{"tiny memory", with("  max_worker_memory: 10Mi\n"), `deployment.yml:9:22: plumbline.max_worker_memory: must be at least 64Mi (an R process needs more); got "10Mi"`},
		{"unknown key", with("  worker: 2\n"), "deployment.yml:9:3: plumbline.worker: unknown field; did you mean workers?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errText(t, "deployment.yml", tt.src, ParseOptions{}); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
