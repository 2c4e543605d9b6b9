package spec

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestSets(t *testing.T) {
	uai := `name: my-uai-endpoint
auth_mode: key
identity:
  type: user_assigned
  user_assigned_identities:
    - resource_id: user_identity_ARM_id_place_holder
`
	tests := []struct {
		name  string
		src   string
		sets  []string
		check func(t *testing.T, doc *Document)
	}{
		{
			name: "integer value",
			src:  okDeployment,
			sets: []string{"instance_count=2"},
			check: func(t *testing.T, doc *Document) {
				if got := *doc.Deployment.InstanceCount; got != 2 {
					t.Errorf("instance_count: got %d, want 2", got)
				}
			},
		},
		{
			name: "string value and intermediate mappings",
			src:  okDeployment,
			sets: []string{"request_settings.max_concurrent_requests_per_instance=4", "environment_variables.WORKER_COUNT=4", "description=a b c"},
			check: func(t *testing.T, doc *Document) {
				d := doc.Deployment
				if got := *d.RequestSettings.MaxConcurrentRequestsPerInstance; got != 4 {
					t.Errorf("max_concurrent_requests_per_instance: got %d, want 4", got)
				}
				if diff := cmp.Diff(map[string]string{"WORKER_COUNT": "4"}, d.EnvironmentVariables); diff != "" {
					t.Errorf("environment_variables (-want +got):\n%s", diff)
				}
				if d.Description != "a b c" {
					t.Errorf("description: got %q", d.Description)
				}
			},
		},
		{
			name: "auth_mode stays a string",
			src:  "name: my-endpoint\n",
			sets: []string{"auth_mode=aad_token"},
			check: func(t *testing.T, doc *Document) {
				if doc.Endpoint.AuthMode != "aad_token" {
					t.Errorf("auth_mode: got %q", doc.Endpoint.AuthMode)
				}
			},
		},
		{
			name: "list index",
			src:  uai,
			sets: []string{"identity.user_assigned_identities.0.client_id=abc"},
			check: func(t *testing.T, doc *Document) {
				want := []UserAssignedIdentity{{ResourceID: "user_identity_ARM_id_place_holder", ClientID: "abc"}}
				if diff := cmp.Diff(want, doc.Endpoint.Identity.UserAssignedIdentities); diff != "" {
					t.Errorf("identities (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "flow mapping value",
			src:  "name: my-endpoint\n",
			sets: []string{"traffic={blue: 90, green: 10}"},
			check: func(t *testing.T, doc *Document) {
				if diff := cmp.Diff(map[string]int{"blue": 90, "green": 10}, doc.Endpoint.Traffic); diff != "" {
					t.Errorf("traffic (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "replacing a null block",
			src:  okDeployment + "request_settings:\n",
			sets: []string{"request_settings.request_timeout_ms=9000"},
			check: func(t *testing.T, doc *Document) {
				if got := *doc.Deployment.RequestSettings.RequestTimeoutMs; got != 9000 {
					t.Errorf("request_timeout_ms: got %d", got)
				}
			},
		},
		{
			name: "name and endpoint_name from flags",
			src:  strings.Replace(okDeployment, "endpoint_name: my-endpoint\n", "", 1),
			sets: []string{"endpoint_name=other-endpoint", "name=green"},
			check: func(t *testing.T, doc *Document) {
				if doc.Deployment.EndpointName != "other-endpoint" || doc.Deployment.Name != "green" {
					t.Errorf("got %q/%q", doc.Deployment.EndpointName, doc.Deployment.Name)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := mustParse(t, "f.yml", tt.src, ParseOptions{Sets: tt.sets, Expect: guessKind(tt.src)})
			tt.check(t, doc)
		})
	}
}

func guessKind(src string) Kind {
	if strings.Contains(src, "endpoint_name") || strings.Contains(src, "instance_type") {
		return KindDeployment
	}
	return KindEndpoint
}

func TestSetErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		sets []string
		want string
	}{
		{
			name: "unknown key",
			src:  okDeployment,
			sets: []string{"instance_cont=2"},
			want: "--set instance_cont=2: instance_cont: unknown field; did you mean instance_count?",
		},
		{
			name: "unknown nested key",
			src:  okDeployment,
			sets: []string{"request_settings.timeout=2"},
			want: "--set request_settings.timeout=2: request_settings.timeout: unknown field; expected one of request_timeout_ms, max_concurrent_requests_per_instance, max_queue_wait_ms",
		},
		{
			name: "wrong type",
			src:  okDeployment,
			sets: []string{"instance_count=two"},
			want: `--set instance_count=two: instance_count: expected an integer, got string "two"`,
		},
		{
			name: "validation problem from a set",
			src:  okDeployment,
			sets: []string{"instance_count=0"},
			want: "--set instance_count=0: instance_count: must be at least 1; got 0",
		},
		{
			name: "index out of range",
			src:  "name: my-endpoint\nidentity:\n  type: user_assigned\n  user_assigned_identities:\n    - resource_id: x\n",
			sets: []string{"identity.user_assigned_identities.3.client_id=abc"},
			want: `--set identity.user_assigned_identities.3.client_id=abc: identity.user_assigned_identities.3.client_id: identity.user_assigned_identities is a list of 1 items; "3" is not an index from 0 to 0`,
		},
		{
			name: "through a scalar",
			src:  okDeployment,
			sets: []string{"model.path=./m"},
			want: `--set model.path=./m: model.path: model is string "azureml:my-model:1", not a mapping or a list; it has no field path`,
		},
		{
			name: "no equals sign",
			src:  okDeployment,
			sets: []string{"instance_count"},
			want: "--set instance_count: expected path=value, for example instance_count=2",
		},
		{
			name: "empty segment",
			src:  okDeployment,
			sets: []string{"request_settings..x=1"},
			want: "--set request_settings..x=1: request_settings..x: empty segment in the path; write a.b.c",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errText(t, "deployment.yml", tt.src, ParseOptions{Sets: tt.sets, Expect: guessKind(tt.src)})
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestApplySetsExported(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a:\n  b: [1, 2]\n"), &doc); err != nil {
		t.Fatal(err)
	}
	if err := ApplySets(&doc, []string{"a.b.1=x", "a.c.d=true"}); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := doc.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": map[string]any{"b": []any{1, "x"}, "c": map[string]any{"d": true}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
