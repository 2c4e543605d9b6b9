package reconcile

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/resolve"
)

func TestDeploymentSpec(t *testing.T) {
	p := &resolve.Plan{
		Endpoint: "r-endpoint-iris", Deployment: "blue", Runtime: driver.RuntimeImage,
		ModelName: "iris-crate", ModelVersion: "1", ModelDigest: "sha256:aa", ModelPath: "models",
		CodeDigest: "sha256:bb", CodeRoot: "src", EntryScript: "plumber.R",
		Image: "r-iris-plumber:1", Env: map[string]string{"A": "1"},
		Liveness: resolve.Route{Port: 8000, Path: "/live"}, Readiness: resolve.Route{Port: 8000, Path: "/ready"},
		Scoring:       resolve.Route{Port: 8000, Path: "/score"},
		InstanceCount: 3, RequestTimeout: 5 * time.Second,
		LivenessProbe:  resolve.Probe{InitialDelay: 10 * time.Second, Period: 10 * time.Second, Timeout: 2 * time.Second, SuccessThreshold: 1, FailureThreshold: 30},
		ReadinessProbe: resolve.Probe{Period: 10 * time.Second, Timeout: 2 * time.Second, SuccessThreshold: 1, FailureThreshold: 30},
		CPU:            2, MemoryBytes: 7 << 30, RequestCPU: 0.5, RequestMemoryBytes: 1 << 30,
	}
	got := DeploymentSpec(p)
	want := driver.DeploymentSpec{
		Endpoint: "r-endpoint-iris", Deployment: "blue",
		Template: driver.InstanceSpec{
			Endpoint: "r-endpoint-iris", Deployment: "blue", Template: p.TemplateHash(), Runtime: driver.RuntimeImage,
			EntryScript: "plumber.R", Image: "r-iris-plumber:1", Port: 8000, Env: map[string]string{"A": "1"},
			CPU: 2, MemoryBytes: 7 << 30, ModelName: "iris-crate", ModelVersion: "1",
		},
		Model:              &driver.Artifact{Digest: "sha256:aa", Path: "models"},
		Code:               &driver.Artifact{Digest: "sha256:bb", Path: "src"},
		Replicas:           3,
		Liveness:           driver.Probe{Path: "/live", Port: 8000, InitialDelay: 10 * time.Second, Period: 10 * time.Second, Timeout: 2 * time.Second, SuccessThreshold: 1, FailureThreshold: 30},
		Readiness:          driver.Probe{Path: "/ready", Port: 8000, Period: 10 * time.Second, Timeout: 2 * time.Second, SuccessThreshold: 1, FailureThreshold: 30},
		RequestCPU:         0.5,
		RequestMemoryBytes: 1 << 30,
		TerminationGrace:   10 * time.Second,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("DeploymentSpec (-want +got):\n%s", d)
	}
	p.ModelDigest, p.CodeDigest = "", ""
	if s := DeploymentSpec(p); s.Model != nil || s.Code != nil {
		t.Errorf("a plan without model and code gives artifacts %+v %+v", s.Model, s.Code)
	}
}
