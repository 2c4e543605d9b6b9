package reconcile_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/drivertest"
	"github.com/plumbline/plumbline/internal/driver/fake"
	"github.com/plumbline/plumbline/internal/reconcile"
	"github.com/plumbline/plumbline/internal/store"
)

// platform is a DeploymentDriver whose platform the test plays: it records
// what is applied and deleted and reports the status the test sets.
type platform struct {
	*fake.Driver
	mu      sync.Mutex
	applied []driver.DeploymentSpec
	deleted []string
	status  map[string]driver.DeploymentStatus
}

func (p *platform) ApplyDeployment(ctx context.Context, s driver.DeploymentSpec) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied = append(p.applied, s)
	if _, ok := p.status[s.Deployment]; !ok {
		p.status[s.Deployment] = driver.DeploymentStatus{State: driver.DeploymentProgressing, Template: s.Template.Template, Replicas: s.Replicas}
	}
	return nil
}

func (p *platform) ObserveDeployment(ctx context.Context, endpoint, deployment string) (driver.DeploymentStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.status[deployment]
	if !ok {
		return st, driver.ErrNotFound
	}
	return st, nil
}

func (p *platform) DeleteDeployment(ctx context.Context, endpoint, deployment string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deleted = append(p.deleted, deployment)
	delete(p.status, deployment)
	return nil
}

func (p *platform) set(deployment string, st driver.DeploymentStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status[deployment] = st
}

func (p *platform) appliedSpecs() []driver.DeploymentSpec {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]driver.DeploymentSpec(nil), p.applied...)
}

func replicas(template string, ready bool, names ...string) []driver.InstanceStatus {
	var out []driver.InstanceStatus
	for i, n := range names {
		out = append(out, driver.InstanceStatus{ID: "ep.blue." + n, Name: n, Addr: fmt.Sprintf("10.77.0.%d:8000", 10+i), Ready: ready, Template: template})
	}
	return out
}

// TestPlatformDriver: with a DeploymentDriver the reconciler applies the
// plan once per generation, mirrors the platform's replicas into the
// store's routing rows, and takes the deployment's state and reason from
// the platform; delete deletes on the platform.
func TestPlatformDriver(t *testing.T) {
	p := &platform{status: map[string]driver.DeploymentStatus{}}
	e := start(t, func(c *reconcile.Config) {
		p.Driver = c.Driver.(*fake.Driver)
		c.Driver = p
	})
	v1 := plan("ep", "blue", 2, map[string]string{"V": "1"})
	e.create(v1)
	drivertest.Eventually(t, 5*time.Second, func() string {
		if a := p.appliedSpecs(); len(a) != 1 || a[0].Replicas != 2 || a[0].Template.Template != v1.TemplateHash() {
			return fmt.Sprintf("applied %+v, want one spec of 2 replicas of %s", a, v1.TemplateHash())
		}
		return ""
	})
	p.set("blue", driver.DeploymentStatus{State: driver.DeploymentProgressing, Template: v1.TemplateHash(), Replicas: 2,
		Instances: replicas(v1.TemplateHash(), false, "blue-a", "blue-b")})
	time.Sleep(300 * time.Millisecond)
	if d, _ := e.st.GetDeployment(context.Background(), "ep", "blue"); d.State != store.StateCreating {
		t.Errorf("while the platform progresses the deployment is %s, want Creating", d.State)
	}
	if r := e.routes("blue"); len(r) != 0 {
		t.Errorf("routable rows before any replica is ready: %+v", r)
	}

	p.set("blue", driver.DeploymentStatus{State: driver.DeploymentAvailable, Template: v1.TemplateHash(), Replicas: 2, Ready: 2, Updated: 2,
		Instances: replicas(v1.TemplateHash(), true, "blue-a", "blue-b")})
	e.waitState("blue", store.StateSucceeded, 5*time.Second)
	drivertest.Eventually(t, 5*time.Second, func() string {
		r := e.routes("blue")
		if len(r) != 2 || r[0].Addr != "10.77.0.10:8000" || r[0].ScoringPath != "/score" || r[0].Driver != "fake" {
			return fmt.Sprintf("routable rows = %+v, want the 2 ready replicas with the plan's route", r)
		}
		return ""
	})
	if n := len(p.appliedSpecs()); n != 1 {
		t.Errorf("applied %d times for one generation, want once", n)
	}

	v2 := plan("ep", "blue", 2, map[string]string{"V": "2"})
	e.update(v2)
	drivertest.Eventually(t, 5*time.Second, func() string {
		if a := p.appliedSpecs(); len(a) != 2 || a[1].Template.Template != v2.TemplateHash() {
			return fmt.Sprintf("applied %d specs, want the update applied", len(a))
		}
		return ""
	})
	p.set("blue", driver.DeploymentStatus{State: driver.DeploymentFailed, Template: v2.TemplateHash(),
		Reason: "KubernetesCrashLoopBackOff", Message: "container inference-server of pod blue-c keeps exiting with code 1",
		Instances: append(replicas(v1.TemplateHash(), true, "blue-a", "blue-b"), replicas(v2.TemplateHash(), false, "blue-c")...)})
	d := e.waitState("blue", store.StateFailed, 5*time.Second)
	if !strings.HasPrefix(d.Reason, "KubernetesCrashLoopBackOff: container inference-server") {
		t.Errorf("reason = %q, want the platform's", d.Reason)
	}
	drivertest.Eventually(t, 5*time.Second, func() string {
		if r := e.routes("blue"); len(r) != 2 || r[0].Template != v1.TemplateHash() {
			return fmt.Sprintf("routable rows = %+v, want the old version's 2 replicas still serving", r)
		}
		return ""
	})

	if _, err := e.st.UpdateDeployment(context.Background(), "ep", "blue", func(x *store.Deployment) error {
		x.State = store.StateDeleting
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.rec.Notify()
	drivertest.Eventually(t, 5*time.Second, func() string {
		if _, err := e.st.GetDeployment(context.Background(), "ep", "blue"); err == nil {
			return "the deployment is still in the store"
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.deleted) != 1 {
			return fmt.Sprintf("deleted on the platform %v, want blue once", p.deleted)
		}
		return ""
	})
}
