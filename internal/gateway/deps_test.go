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
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, module) && !allowed[pkg] {
			t.Errorf("the gateway imports %s; it may import only internal/auth, internal/tlsca, internal/contract and internal/promreg of plumbline's packages", pkg)
		}
	}
}
