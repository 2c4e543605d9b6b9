// Package kubernetes_test runs plumbline's Kubernetes pieces against a real
// single-node cluster (internal/k8stest): the Helm chart validated by the
// API server, the gateway fed by EndpointSlices in front of real pods.
package kubernetes_test

import (
	"os"
	"testing"

	"github.com/plumbline/plumbline/internal/k8stest"
)

func TestMain(m *testing.M) {
	k8stest.Main(m, func() {
		if plumblineDir != "" {
			os.RemoveAll(plumblineDir)
		}
	})
}
