package kubernetes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/driver/drivertest"
	"github.com/plumbline/plumbline/internal/driver/kubernetes"
	"github.com/plumbline/plumbline/internal/k8stest"
)

func TestMain(m *testing.M) { k8stest.Main(m) }

const (
	serverImage    = "localhost/plumbline-test/testserver:k8s"
	misbehaveImage = "localhost/plumbline-test/misbehave:1"
)

var (
	imagesOnce sync.Once
	imagesErr  error
)

// cluster returns the shared cluster with the test images imported.
func cluster(t *testing.T) *k8stest.Cluster {
	t.Helper()
	c := k8stest.Shared(t)
	imagesOnce.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		dir := filepath.Dir(self)
		for ref, src := range map[string]string{
			serverImage:    filepath.Join(dir, "..", "drivertest", "testdata", "testserver"),
			misbehaveImage: filepath.Join(dir, "testdata", "misbehave"),
		} {
			name := filepath.Base(src)
			tar, err := k8stest.GoBinaryImage(ref, name, src)
			if err != nil {
				imagesErr = err
				return
			}
			if err := c.ImportImage(context.Background(), tar); err != nil {
				imagesErr = err
				return
			}
		}
	})
	if imagesErr != nil {
		t.Fatalf("test images: %v", imagesErr)
	}
	return c
}

func newDriver(t *testing.T, c *k8stest.Cluster) (*kubernetes.Driver, string) {
	t.Helper()
	ns := c.Namespace(t)
	d, err := kubernetes.New(t.Context(), kubernetes.Config{
		REST: c.Config, Namespace: ns, Owner: "test-owner",
		ImagePullPolicy: corev1.PullIfNotPresent,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, ns
}

// serverSpec is a deployment of the conformance suite's test server.
func serverSpec(endpoint, deployment, template string, replicas int, env map[string]string) driver.DeploymentSpec {
	return driver.DeploymentSpec{
		Endpoint: endpoint, Deployment: deployment,
		Template: driver.InstanceSpec{
			Runtime: driver.RuntimeGeneric, Image: serverImage, Port: 5001,
			Command:  []string{"/testserver", "-host", "0.0.0.0", "-port", "{port}"},
			Env:      env,
			Template: template,
			CPU:      0.25, MemoryBytes: 64 << 20,
		},
		Replicas:           replicas,
		Readiness:          driver.Probe{Path: "/ready", Period: time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 1},
		Liveness:           driver.Probe{Path: "/live", InitialDelay: 2 * time.Second, Period: 5 * time.Second, Timeout: 2 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
		RequestCPU:         0.01,
		RequestMemoryBytes: 16 << 20,
		TerminationGrace:   2 * time.Second,
	}
}

// waitState waits until the deployment is in state want and check (if
// any) returns "", and returns its status.
func waitState(t *testing.T, d *kubernetes.Driver, endpoint, deployment string, want driver.DeploymentState, timeout time.Duration, check func(driver.DeploymentStatus) string) driver.DeploymentStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var st driver.DeploymentStatus
	var err error
	for {
		st, err = d.ObserveDeployment(t.Context(), endpoint, deployment)
		if err == nil && st.State == want {
			msg := ""
			if check != nil {
				msg = check(st)
			}
			if msg == "" {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/%s is %s but %s", endpoint, deployment, want, msg)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s did not reach %s within %s: %+v, %v", endpoint, deployment, want, timeout, st, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func score(t *testing.T, hc *http.Client, addr string, body map[string]any) map[string]string {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := hc.Post("http://"+addr+"/score", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s/score: %v", addr, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s/score = %d %s", addr, resp.StatusCode, rb)
	}
	out := map[string]string{}
	json.Unmarshal(rb, &out)
	return out
}

// readySlice lists the ready addresses the Service's EndpointSlices give.
func readySlice(t *testing.T, c *k8stest.Cluster, ns, service string) []string {
	t.Helper()
	sl, err := c.Client.DiscoveryV1().EndpointSlices(ns).List(t.Context(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range sl.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				out = append(out, e.Addresses...)
			}
		}
	}
	return out
}

func TestDeploymentLifecycle(t *testing.T) {
	c := cluster(t)
	d, ns := newDriver(t, c)
	ctx := t.Context()
	hc := c.HTTPClient()
	const ep, dep = "Iris-Endpoint", "blue"
	name := kubernetes.ObjectName(ep, dep)

	spec := serverSpec(ep, dep, "t1:v1", 2, map[string]string{"PLUMBLINE_USER": "one"})
	begin := time.Now()
	if err := d.ApplyDeployment(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, d, ep, dep, driver.DeploymentAvailable, 2*time.Minute, nil)
	t.Logf("create → Available with 2 ready pods: %s", time.Since(begin).Round(100*time.Millisecond))
	if st.Replicas != 2 || st.Ready != 2 || st.Updated != 2 || st.Template != "t1:v1" || len(st.Instances) != 2 {
		t.Fatalf("status = %+v, want 2 ready replicas of t1:v1", st)
	}

	t.Run("Objects", func(t *testing.T) {
		k, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if k.Labels[kubernetes.LabelEndpoint] != "iris-endpoint" || k.Labels[kubernetes.LabelDeployment] != "blue" || k.Labels[kubernetes.LabelOwner] != "test-owner" {
			t.Errorf("Deployment labels = %v", k.Labels)
		}
		if k.Annotations[kubernetes.AnnotationTemplate] != "t1:v1" || k.Spec.Template.Annotations[kubernetes.AnnotationTemplate] != "t1:v1" {
			t.Errorf("template annotations = %v / %v", k.Annotations, k.Spec.Template.Annotations)
		}
		ru := k.Spec.Strategy.RollingUpdate
		if ru == nil || ru.MaxSurge.IntValue() != 1 || ru.MaxUnavailable.IntValue() != 0 {
			t.Errorf("rolling update = %+v, want surge 1, unavailable 0", ru)
		}
		pod := k.Spec.Template.Spec
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Error("the scoring pod mounts a service account token")
		}
		cn := pod.Containers[0]
		if cn.Name != kubernetes.ServingContainer || cn.Image != serverImage {
			t.Errorf("container = %s %s", cn.Name, cn.Image)
		}
		if p := cn.ReadinessProbe; p == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port.IntValue() != 5001 || p.PeriodSeconds != 1 || p.FailureThreshold != 1 {
			t.Errorf("readiness probe = %+v", p)
		}
		if p := cn.LivenessProbe; p == nil || p.HTTPGet.Path != "/live" || p.InitialDelaySeconds != 2 || p.PeriodSeconds != 5 || p.FailureThreshold != 3 {
			t.Errorf("liveness probe = %+v", p)
		}
		if got := cn.Resources.Limits.Memory().String(); got != "64Mi" {
			t.Errorf("memory limit = %s, want 64Mi", got)
		}
		if got := cn.Resources.Limits.Cpu().String(); got != "250m" {
			t.Errorf("cpu limit = %s, want 250m", got)
		}
		if got := cn.Resources.Requests.Cpu().String(); got != "10m" {
			t.Errorf("cpu request = %s, want 10m", got)
		}
		if cn.Lifecycle == nil || cn.Lifecycle.PreStop == nil || cn.Lifecycle.PreStop.Sleep == nil {
			t.Errorf("no preStop sleep: the gateways would not see the pod leave before SIGTERM")
		}
		svc, err := c.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.OwnerReferences) != 1 || svc.OwnerReferences[0].UID != k.UID {
			t.Errorf("Service = clusterIP %q owners %+v; want headless, owned by the Deployment", svc.Spec.ClusterIP, svc.OwnerReferences)
		}
	})

	t.Run("PodsServe", func(t *testing.T) {
		for _, in := range st.Instances {
			got := score(t, hc, in.Addr, map[string]any{"env": []string{"PLUMBLINE_USER", "PORT"}})
			if got["PLUMBLINE_USER"] != "one" || got["PORT"] != "5001" {
				t.Errorf("pod %s at %s sees %v, want the user's variable and PORT=5001", in.Name, in.Addr, got)
			}
		}
		drivertest.Eventually(t, 30*time.Second, func() string {
			if got := readySlice(t, c, ns, name); len(got) != 2 {
				return fmt.Sprintf("EndpointSlices list ready %v, want the 2 pods", got)
			}
			return ""
		})
	})

	t.Run("InstanceMethods", func(t *testing.T) {
		list, err := d.List(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("List() = %+v, %v; want 2 pods", list, err)
		}
		in := st.Instances[0]
		got, err := d.Inspect(ctx, in.ID)
		if err != nil || got.State != driver.StateRunning || got.Addr != in.Addr || got.Template != "t1:v1" {
			t.Errorf("Inspect(%s) = %+v, %v", in.ID, got, err)
		}
		score(t, hc, in.Addr, map[string]any{"log": "a line for the log"})
		drivertest.Eventually(t, 20*time.Second, func() string {
			r, err := d.Logs(ctx, in.ID, driver.LogOptions{Tail: 1})
			if err != nil {
				return err.Error()
			}
			defer r.Close()
			b, _ := io.ReadAll(r)
			if strings.TrimSpace(string(b)) != "a line for the log" {
				return fmt.Sprintf("Logs(Tail 1) = %q", b)
			}
			return ""
		})
		if _, err := d.Inspect(ctx, "x.y.no-such-pod"); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Inspect(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := d.Start(ctx, driver.InstanceSpec{ID: "a.b.c"}); err == nil {
			t.Error("Start of a single instance succeeded; the driver runs deployments")
		}
	})

	t.Run("ApplyAgainChangesNothing", func(t *testing.T) {
		before, _ := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err := d.ApplyDeployment(ctx, spec); err != nil {
			t.Fatal(err)
		}
		after, _ := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if after.Generation != before.Generation {
			t.Errorf("generation %d → %d after applying the same spec", before.Generation, after.Generation)
		}
	})

	t.Run("Scale", func(t *testing.T) {
		spec.Replicas = 3
		if err := d.ApplyDeployment(ctx, spec); err != nil {
			t.Fatal(err)
		}
		old := map[string]bool{}
		for _, in := range st.Instances {
			old[in.Name] = true
		}
		s := waitState(t, d, ep, dep, driver.DeploymentAvailable, time.Minute, func(s driver.DeploymentStatus) string {
			if s.Ready != 3 {
				return fmt.Sprintf("%d ready, want 3", s.Ready)
			}
			return ""
		})
		kept := 0
		for _, in := range s.Instances {
			if old[in.Name] {
				kept++
			}
		}
		if kept != 2 {
			t.Errorf("scaling 2 → 3 kept %d of the 2 pods, want both untouched", kept)
		}
	})

	t.Run("RollingUpdate", func(t *testing.T) {
		spec.Template.Template = "t1:v2"
		spec.Template.Env = map[string]string{"PLUMBLINE_USER": "two"}
		if err := d.ApplyDeployment(ctx, spec); err != nil {
			t.Fatal(err)
		}
		if s, _ := d.ObserveDeployment(ctx, ep, dep); s.State == driver.DeploymentAvailable {
			t.Errorf("right after an update the deployment is Available: %+v", s)
		}
		s := waitState(t, d, ep, dep, driver.DeploymentAvailable, 2*time.Minute, func(s driver.DeploymentStatus) string {
			for _, in := range s.Instances {
				if in.Template != "t1:v2" {
					return "an old pod is still there"
				}
			}
			return ""
		})
		for _, in := range s.Instances {
			if got := score(t, hc, in.Addr, map[string]any{"env": []string{"PLUMBLINE_USER"}}); got["PLUMBLINE_USER"] != "two" {
				t.Errorf("pod %s sees %v after the update", in.Name, got)
			}
		}
	})

	t.Run("StopReplaces", func(t *testing.T) {
		spec.Replicas = 1
		if err := d.ApplyDeployment(ctx, spec); err != nil {
			t.Fatal(err)
		}
		s := waitState(t, d, ep, dep, driver.DeploymentAvailable, time.Minute, func(s driver.DeploymentStatus) string {
			if len(s.Instances) != 1 {
				return fmt.Sprintf("%d pods, want 1", len(s.Instances))
			}
			return ""
		})
		victim := s.Instances[0]
		if err := d.Stop(ctx, victim.ID, time.Second); err != nil {
			t.Fatal(err)
		}
		waitState(t, d, ep, dep, driver.DeploymentAvailable, time.Minute, func(s driver.DeploymentStatus) string {
			if len(s.Instances) != 1 || s.Instances[0].Name == victim.Name || !s.Instances[0].Ready {
				return fmt.Sprintf("instances %+v, want one new ready pod", s.Instances)
			}
			return ""
		})
	})

	t.Run("Delete", func(t *testing.T) {
		if err := d.DeleteDeployment(ctx, ep, dep); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ObserveDeployment(ctx, ep, dep); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("ObserveDeployment after delete = %v, want ErrNotFound", err)
		}
		drivertest.Eventually(t, time.Minute, func() string {
			if _, err := c.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return "the Service is still there (owner reference)"
			}
			if list, _ := d.List(ctx); len(list) != 0 {
				return fmt.Sprintf("%d pods left", len(list))
			}
			return ""
		})
		if err := d.DeleteDeployment(ctx, ep, dep); err != nil {
			t.Errorf("deleting again = %v, want nil", err)
		}
	})
}

func TestOtherOwnersObjectsUntouched(t *testing.T) {
	c := cluster(t)
	d, ns := newDriver(t, c)
	name := kubernetes.ObjectName("e1", "d1")
	foreign := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "theirs"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "theirs"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "theirs"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: serverImage}}},
			},
		},
	}
	if _, err := c.Client.AppsV1().Deployments(ns).Create(t.Context(), foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := d.ApplyDeployment(t.Context(), serverSpec("e1", "d1", "t1:x", 1, nil))
	var se *driver.StartError
	if !errors.As(err, &se) || !strings.Contains(se.Reason, "not this plumbline's") {
		t.Errorf("Apply over another's Deployment = %v, want a StartError naming the conflict", err)
	}
	if err := d.DeleteDeployment(t.Context(), "e1", "d1"); err == nil {
		t.Error("DeleteDeployment removed another owner's Deployment")
	}
	if _, err := c.Client.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{}); err != nil {
		t.Errorf("the other Deployment is gone: %v", err)
	}
}

// TestReasons: pod and Deployment conditions become Azure's reasons with
// what to do.
func TestReasons(t *testing.T) {
	c := cluster(t)
	d, _ := newDriver(t, c)
	cases := []struct {
		name       string
		edit       func(*driver.DeploymentSpec)
		reason     string
		inMessages []string
	}{
		{
			name:       "ImageNotThere",
			edit:       func(s *driver.DeploymentSpec) { s.Template.Image = "localhost/plumbline-test/absent:9" },
			reason:     kubernetes.ReasonImagePull,
			inMessages: []string{"image localhost/plumbline-test/absent:9 not found in any reachable registry"},
		},
		{
			name: "Crashing",
			edit: func(s *driver.DeploymentSpec) {
				s.Template.Image = misbehaveImage
				s.Template.Command = []string{"/misbehave", "crash", "3", "Error in library(randomForest) : there is no package called 'randomForest'"}
			},
			reason:     kubernetes.ReasonCrashLoop,
			inMessages: []string{"keeps exiting with code 3", "last log lines: Error in library(randomForest) : there is no package called 'randomForest'"},
		},
		{
			name: "OutOfMemory",
			edit: func(s *driver.DeploymentSpec) {
				s.Template.Image = misbehaveImage
				s.Template.Command = []string{"/misbehave", "hog", "200"}
				s.Template.MemoryBytes = 32 << 20
			},
			reason:     kubernetes.ReasonOutOfMemory,
			inMessages: []string{"out of memory (its memory limit is 32Mi)", "resources.limits.memory"},
		},
		{
			name:       "Unschedulable",
			edit:       func(s *driver.DeploymentSpec) { s.RequestCPU = 64; s.Template.CPU = 64 },
			reason:     kubernetes.ReasonUnschedulable,
			inMessages: []string{"cannot be scheduled", "Insufficient cpu"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dep := strings.ToLower(tc.name)
			spec := serverSpec("reasons", dep, "t1:"+dep, 1, nil)
			tc.edit(&spec)
			if err := d.ApplyDeployment(t.Context(), spec); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.DeleteDeployment(context.Background(), "reasons", dep) })
			st := waitState(t, d, "reasons", dep, driver.DeploymentFailed, 2*time.Minute, nil)
			if st.Reason != tc.reason {
				t.Errorf("reason = %s (%s), want %s", st.Reason, st.Message, tc.reason)
			}
			for _, want := range tc.inMessages {
				if !strings.Contains(st.Message, want) {
					t.Errorf("message %q lacks %q", st.Message, want)
				}
			}
			t.Logf("%s: %s", st.Reason, st.Message)
		})
	}
}
