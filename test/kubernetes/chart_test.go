package kubernetes_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/plumbline/plumbline/internal/k8stest"
)

// chartDir is deploy/helm/plumbline.
func chartDir(t *testing.T) string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", "deploy", "helm", "plumbline")
}

// helm returns the helm binary (scripts/install-kubernetes.sh builds it).
func helm(t *testing.T) string {
	t.Helper()
	p, err := k8stest.Helm()
	if err != nil {
		if os.Getenv("PLUMBLINE_CI") == "1" {
			t.Fatalf("PLUMBLINE_CI=1 and no helm: %v", err)
		}
		t.Skipf("no helm: %v", err)
	}
	return p
}

func helmCmd(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(t.Context(), helm(t), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	return cmd
}

// TestChartServerDryRun renders the chart with helm template and has the
// real API server validate every object (kubectl apply --dry-run=server):
// schemas, RBAC, the Role's rules, the PodDisruptionBudget.
func TestChartServerDryRun(t *testing.T) {
	h := helm(t)
	c := k8stest.Shared(t)
	cases := []struct {
		name string
		set  []string
		want []string // objects kubectl reports
	}{
		{
			name: "LocalCA",
			set:  []string{"postgres.existingSecret=plumbline-postgres"},
			want: []string{
				"serviceaccount/plk-plumbline-control", "serviceaccount/plk-plumbline-gateway",
				"role.rbac.authorization.k8s.io/plk-plumbline-control", "rolebinding.rbac.authorization.k8s.io/plk-plumbline-gateway",
				"secret/plk-plumbline-tls", "persistentvolumeclaim/plk-plumbline-data",
				"deployment.apps/plk-plumbline-control", "deployment.apps/plk-plumbline-gateway",
				"service/plk-plumbline-control", "service/plk-plumbline-gateway",
				"poddisruptionbudget.policy/plk-plumbline-gateway",
			},
		},
		{
			name: "SecretsAndLoadBalancer",
			set: []string{"postgres.existingSecret=pg", "postgres.key=dsn", "tls.existingSecret=my-tls",
				"persistence.existingClaim=shared", "gateway.service.type=LoadBalancer", "gateway.replicas=5"},
			want: []string{"deployment.apps/plk-plumbline-gateway", "service/plk-plumbline-gateway"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := c.Namespace(t)
			args := []string{"template", "plk", chartDir(t), "--namespace", ns}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			cmd := helmCmd(t, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			rendered, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s %s: %v\n%s", h, strings.Join(args, " "), err, stderr.String())
			}
			apply := c.Command(t.Context(), c.KubectlPath(), "apply", "--dry-run=server", "-n", ns, "-f", "-")
			apply.Stdin = strings.NewReader(string(rendered))
			out, err := apply.CombinedOutput()
			if err != nil {
				t.Fatalf("helm template | kubectl apply --dry-run=server: %v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w+" created (server dry run)") {
					t.Errorf("kubectl apply --dry-run=server did not create %s:\n%s", w, out)
				}
			}
			t.Logf("helm template | kubectl apply --dry-run=server:\n%s", out)
			if tc.name == "SecretsAndLoadBalancer" {
				if strings.Contains(string(rendered), "kind: PersistentVolumeClaim") || strings.Contains(string(rendered), "name: plk-plumbline-tls") {
					t.Error("with an existing claim and TLS Secret the chart still makes its own")
				}
				if !strings.Contains(string(rendered), "replicas: 5") || !strings.Contains(string(rendered), "type: LoadBalancer") {
					t.Error("gateway.replicas / gateway.service.type not applied")
				}
			}
		})
	}
}

// TestChartRequiresPostgres: without the PostgreSQL Secret the chart
// refuses to render and says what to do.
func TestChartRequiresPostgres(t *testing.T) {
	out, err := helmCmd(t, "template", "plk", chartDir(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "postgres.existingSecret is required") || !strings.Contains(string(out), "kubectl create secret generic") {
		t.Errorf("helm template without postgres.existingSecret = %v:\n%s\nwant a failure saying how to create the Secret", err, out)
	}
}

// TestChartRBACIsNamespaced: the chart asks for nothing cluster-wide, and
// the gateway's service account can read EndpointSlices but not Secrets.
func TestChartRBACIsNamespaced(t *testing.T) {
	c := k8stest.Shared(t)
	ns := c.Namespace(t)
	rendered, err := helmCmd(t, "template", "plk", chartDir(t), "--namespace", ns, "--set", "postgres.existingSecret=pg").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"kind: ClusterRole", "kind: ClusterRoleBinding", "kind: Namespace"} {
		if strings.Contains(string(rendered), kind) {
			t.Errorf("the chart renders a %s; its RBAC must stay in its namespace", kind)
		}
	}
	// Apply only the RBAC objects for real, then ask the API server.
	var rbac []string
	for _, doc := range strings.Split(string(rendered), "\n---") {
		if strings.Contains(doc, "kind: ServiceAccount") || strings.Contains(doc, "kind: Role") {
			rbac = append(rbac, doc)
		}
	}
	apply := c.Command(t.Context(), c.KubectlPath(), "apply", "-n", ns, "-f", "-")
	apply.Stdin = strings.NewReader(strings.Join(rbac, "\n---\n"))
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply RBAC: %v\n%s", err, out)
	}
	can := func(sa, verb, resource, namespace string) bool {
		out, _ := c.Kubectl(context.Background(), "auth", "can-i", verb, resource, "-n", namespace, "--as=system:serviceaccount:"+ns+":"+sa)
		return strings.TrimSpace(out) == "yes"
	}
	for _, tc := range []struct {
		sa, verb, resource, namespace string
		want                          bool
	}{
		{"plk-plumbline-control", "create", "deployments.apps", ns, true},
		{"plk-plumbline-control", "delete", "secrets", ns, true},
		{"plk-plumbline-control", "get", "pods/log", ns, true},
		{"plk-plumbline-control", "create", "deployments.apps", "default", false},
		{"plk-plumbline-control", "list", "nodes", "", false},
		{"plk-plumbline-gateway", "watch", "endpointslices.discovery.k8s.io", ns, true},
		{"plk-plumbline-gateway", "get", "secrets", ns, false},
		{"plk-plumbline-gateway", "watch", "endpointslices.discovery.k8s.io", "default", false},
	} {
		if got := can(tc.sa, tc.verb, tc.resource, tc.namespace); got != tc.want {
			t.Errorf("%s can %s %s in %q = %v, want %v", tc.sa, tc.verb, tc.resource, tc.namespace, got, tc.want)
		}
	}
}
