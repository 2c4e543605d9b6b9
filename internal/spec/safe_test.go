package spec

import (
	"testing"
)

// TestSafeRolloutRules covers the plumbline.compare, plumbline.capture and
// plumbline.rollout blocks. want "" means the document is valid.
func TestSafeRolloutRules(t *testing.T) {
	const ep = "name: my-endpoint\n"
	tests := []struct {
		name, file, src, want string
	}{
		{"compare", "endpoint.yml", ep + "plumbline:\n  compare:\n    path: $.species[*]\n    tolerance: 0.001\n    relative_tolerance: 0.01\n", ""},
		{"compare path not JSONPath", "endpoint.yml", ep + "plumbline:\n  compare:\n    path: species[\n",
			"endpoint.yml:4:11: plumbline.compare.path: is not a JSONPath (RFC 9535, e.g. $.predictions or $.species[*]): "},
		{"negative tolerance", "endpoint.yml", ep + "plumbline:\n  compare:\n    tolerance: -1\n",
			"endpoint.yml:4:16: plumbline.compare.tolerance: must be 0 or more; got -1"},
		{"capture", "deployment.yml", okDeployment + "plumbline:\n  capture:\n    sampling_rate: 0.25\n    redact: [$..ssn]\n    hash: [$.customer_id]\n    rolling_rate: Day\n    sink: {url: https://collector.example.com/in, headers: {Authorization: Bearer x}}\n", ""},
		{"sampling rate above 1", "deployment.yml", okDeployment + "plumbline:\n  capture:\n    sampling_rate: 10\n",
			"deployment.yml:10:20: plumbline.capture.sampling_rate: must be from 0 to 1 (the share of requests captured); got 10"},
		{"redact not JSONPath", "deployment.yml", okDeployment + "plumbline:\n  capture:\n    redact: [ssn]\n",
			"deployment.yml:10:14: plumbline.capture.redact.0: is not a JSONPath (RFC 9535, e.g. $.customer.ssn or $..email): "},
		{"rolling rate", "deployment.yml", okDeployment + "plumbline:\n  capture:\n    rolling_rate: weekly\n",
			`deployment.yml:10:19: plumbline.capture.rolling_rate: must be one of minute, hour, day; got "weekly"`},
		{"sink without scheme", "deployment.yml", okDeployment + "plumbline:\n  capture:\n    sink: {url: collector:9000}\n",
			`deployment.yml:10:17: plumbline.capture.sink.url: must be an http or https URL; got "collector:9000"`},
		{"rollout", "deployment.yml", okDeployment + "plumbline:\n  rollout:\n    steps: [5, 50, 100]\n    shadow_percent: 20\n    bake_time: 30\n    min_requests: 50\n    max_error_rate: 0.02\n    max_latency_ratio: 2\n    min_agreement: 0.9\n    max_contract_violation_rate: 0\n", ""},
		{"steps decrease", "deployment.yml", okDeployment + "plumbline:\n  rollout:\n    steps: [50, 25, 100]\n",
			"deployment.yml:10:17: plumbline.rollout.steps.1: steps must increase; 25 follows 50"},
		{"last step not 100", "deployment.yml", okDeployment + "plumbline:\n  rollout:\n    steps: [10, 50]\n",
			"deployment.yml:10:5: plumbline.rollout.steps: the last step must be 100, so that the deployment ends with all the traffic; got 50"},
		{"shadow above 50", "deployment.yml", okDeployment + "plumbline:\n  rollout:\n    shadow_percent: 60\n",
			"deployment.yml:10:21: plumbline.rollout.shadow_percent: must be from 0 to 50 (Azure's limit for mirrored traffic); got 60"},
		{"error rate as a percent", "deployment.yml", okDeployment + "plumbline:\n  rollout:\n    max_error_rate: 5\n",
			"deployment.yml:10:21: plumbline.rollout.max_error_rate: must be from 0 to 1 (a share: 0.01 is 1 %); got 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind := KindDeployment
			if tt.file == "endpoint.yml" {
				kind = KindEndpoint
			}
			doc, err := Parse(tt.file, []byte(tt.src), ParseOptions{Expect: kind})
			if err == nil {
				if kind == KindEndpoint {
					err = doc.Endpoint.Validate()
				} else {
					err = doc.Deployment.Validate()
				}
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if tt.want == "" && got != "" || tt.want != "" && (len(got) < len(tt.want) || got[:len(tt.want)] != tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
