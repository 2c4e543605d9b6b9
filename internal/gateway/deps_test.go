package gateway

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the data plane free of the control plane: of
// plumbline's packages the gateway may import only auth and tlsca.
func TestDependencies(t *testing.T) {
	const module = "github.com/plumbline/plumbline/"
	allowed := map[string]bool{
		module + "internal/gateway":  true,
		module + "internal/auth":     true,
		module + "internal/tlsca":    true,
		module + "internal/contract": true, // a leaf: the input contract's types and checker
		module + "internal/promreg":  true, // a leaf: shared Prometheus registration
		module + "internal/compare":  true, // a leaf: prediction-level comparison of two answers
		module + "internal/figures":  true, // a leaf: mergeable rollout figures and gates
		module + "internal/redact":   true, // a leaf: redaction of captured bodies
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, module) && !allowed[pkg] {
			t.Errorf("the gateway imports %s; it may import only internal/auth, internal/tlsca and the leaves contract, compare, figures, redact and promreg of plumbline's packages", pkg)
		}
	}
}
