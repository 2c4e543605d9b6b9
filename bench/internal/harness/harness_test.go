package harness

import (
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/spec"
)

// The deployments the harness writes must stay valid plumbline documents.
func TestGenericDeploymentIsValid(t *testing.T) {
	doc := genericDeployment("blue", "gwbench", []string{"/opt/bench-backend", "--port", "{port}", "--delay", "20ms"}, 1, 2, map[string]string{"X": "1"})
	d, err := spec.Parse("generated.yml", []byte(doc), spec.ParseOptions{Expect: spec.KindDeployment})
	if err != nil {
		t.Fatalf("parse:\n%s\n%v", doc, err)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("validate:\n%s\n%v", doc, err)
	}
	dep := d.Deployment
	if got := dep.Environment.Inline.Plumbline.Command; len(got) != 5 || got[2] != "{port}" {
		t.Errorf("command = %q", got)
	}
	if got := *dep.RequestSettings.MaxConcurrentRequestsPerInstance; got != 1 {
		t.Errorf("max_concurrent_requests_per_instance = %d, want 1", got)
	}
}

func TestMedians(t *testing.T) {
	if got := medianF([]float64{3, 1, 2}); got != 2 {
		t.Errorf("medianF = %v, want 2", got)
	}
	if got := medianDur([]time.Duration{4, 1, 3, 2}); got != 2 {
		t.Errorf("medianDur = %v, want 2 (mean of the middle two, truncated)", got)
	}
	if got := ratios([]float64{10, 20}, []float64{5, 0}); len(got) != 1 || got[0] != 2 {
		t.Errorf("ratios = %v, want [2] (a zero divisor skipped)", got)
	}
}

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 250 * time.Microsecond: "250 µs", 1234 * time.Microsecond: "1.23 ms", 45 * time.Millisecond: "45.0 ms",
		2500 * time.Millisecond: "2.50 s", -300 * time.Microsecond: "−300 µs",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%s) = %q, want %q", d, got, want)
		}
	}
}
