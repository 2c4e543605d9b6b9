package endpointslices

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plumbline/plumbline/internal/gateway"
)

func slice(ep, dep string, port int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Labels: map[string]string{labelManagedBy: "plumbline", labelEndpoint: ep, labelDeployment: dep}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
		Endpoints:   eps,
	}
}

func endpoint(ip, pod string, ready, terminating bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Terminating: &terminating},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: pod},
	}
}

func TestBuild(t *testing.T) {
	got := Build([]*discoveryv1.EndpointSlice{
		slice("iris", "blue", 8000,
			endpoint("10.77.0.12", "blue-b", true, false),
			endpoint("10.77.0.11", "blue-a", true, false),
			endpoint("10.77.0.13", "blue-c", false, true),  // terminating: not ready
			endpoint("10.77.0.14", "blue-d", false, false), // not ready yet
		),
		// A pod moving between two slices of one Service shows in both.
		slice("iris", "blue", 8000, endpoint("10.77.0.12", "blue-b", true, false)),
		slice("Iris", "Green", 5001, endpoint("10.77.0.20", "green-a", true, false)),
		{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{}}}, // not a plumbline Service
	})
	want := Table{
		"iris/blue":  {{Name: "blue-a", Addr: "10.77.0.11:8000"}, {Name: "blue-b", Addr: "10.77.0.12:8000"}},
		"iris/green": {{Name: "green-a", Addr: "10.77.0.20:5001"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Build (-want +got):\n%s", d)
	}
}

func TestFill(t *testing.T) {
	base := &gateway.Snapshot{Endpoints: map[string]*gateway.Endpoint{
		"iris": {Name: "iris", Keys: []string{"k"}, Traffic: map[string]int{"blue": 100}, Deployments: map[string]*gateway.Deployment{
			"blue":  {Name: "blue", ScoringPath: "/score", Instances: []gateway.Instance{{Name: "stale", Addr: "127.0.0.1:1"}}},
			"green": {Name: "green"},
		}},
	}}
	tab := Table{"iris/blue": {{Name: "blue-a", Addr: "10.77.0.11:8000"}}}
	got := tab.Fill(base)
	if in := got.Endpoints["iris"].Deployments["blue"].Instances; len(in) != 1 || in[0].Name != "blue-a" {
		t.Errorf("blue's instances = %+v, want the table's", in)
	}
	if in := got.Endpoints["iris"].Deployments["green"].Instances; len(in) != 0 {
		t.Errorf("green's instances = %+v, want none (no ready pod)", in)
	}
	if got.Endpoints["iris"].Deployments["blue"].ScoringPath != "/score" || got.Endpoints["iris"].Keys[0] != "k" {
		t.Error("Fill lost the deployment's settings or the endpoint's keys")
	}
	if in := base.Endpoints["iris"].Deployments["blue"].Instances; len(in) != 1 || in[0].Name != "stale" {
		t.Errorf("Fill modified the snapshot it was given: %+v", in)
	}
}
