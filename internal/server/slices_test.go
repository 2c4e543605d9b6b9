package server

import (
	"strings"
	"testing"
)

// TestRoutesFlag: --routes takes store (the default) or endpointslices;
// endpointslices needs a namespace and a gateway; anything else is refused
// with what it accepts.
func TestRoutesFlag(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		routes, role, ns, want string
	}{
		{"", "", "", ""},
		{"store", "", "", ""},
		{"endpointslices", "", "models", ""},
		{"endpointslices", "", "", "needs --k8s-namespace"},
		{"endpointslices", RoleControl, "models", "runs no gateway"},
		{"slices", "", "models", `--routes "slices": want store`},
	} {
		cfg := Config{DataDir: dir, Routes: tt.routes, Role: tt.role, Store: "postgres://x@127.0.0.1/x"}
		if tt.role == "" {
			cfg.Store = ""
		}
		cfg.Kubernetes.Namespace = tt.ns
		got, err := cfg.withDefaults()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("--routes %q --role %q: %v", tt.routes, tt.role, err)
		case tt.want == "" && got.Routes != RoutesStore && got.Routes != RoutesEndpointSlices:
			t.Errorf("--routes %q: Routes = %q", tt.routes, got.Routes)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("--routes %q --role %q: error %v; want one saying %q", tt.routes, tt.role, err, tt.want)
		}
	}
}
