package figures

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSketchMergesAcrossGateways(t *testing.T) {
	var a, b, all Sketch
	for i := 1; i <= 1000; i++ {
		v := float64(i) / 1000
		all.Add(v)
		if i%3 == 0 {
			a.Add(v)
		} else {
			b.Add(v)
		}
	}
	// Through JSON, as rows of the store carry them.
	var ra, rb Sketch
	for _, x := range []struct {
		from *Sketch
		to   *Sketch
	}{{&a, &ra}, {&b, &rb}} {
		j, err := json.Marshal(x.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(j, x.to); err != nil {
			t.Fatal(err)
		}
	}
	var m Sketch
	m.Merge(&ra)
	m.Merge(&rb)
	if m.Count() != 1000 || math.Abs(m.Mean()-all.Mean()) > 1e-12 {
		t.Errorf("merged count %d mean %v, want 1000 and %v", m.Count(), m.Mean(), all.Mean())
	}
	for _, q := range []float64{0.5, 0.99} {
		want := q
		if got := m.Quantile(q); math.Abs(got-want)/want > 0.02 {
			t.Errorf("p%v: got %v, want %v within 2 %%", q*100, got, want)
		}
	}
	var empty Sketch
	if j, _ := json.Marshal(empty); string(j) != "null" || empty.Quantile(0.5) != 0 {
		t.Errorf("empty sketch: %s, %v", j, empty.Quantile(0.5))
	}
}

func TestDeploymentObserve(t *testing.T) {
	var d Deployment
	for _, code := range []int{200, 200, 424, 503, 408, 429, 422, 404, 401} {
		d.Observe(code, 0.01)
	}
	if d.Requests != 9 || d.Errors != 4 || d.ContractViolations != 1 {
		t.Errorf("got %d requests, %d errors, %d violations; want 9, 4, 1", d.Requests, d.Errors, d.ContractViolations)
	}
	var m Deployment
	m.Merge(&d)
	m.Merge(&d)
	if m.Requests != 18 || m.ErrorRate() != d.ErrorRate() || m.Latency.Count() != 18 {
		t.Errorf("merge: %+v", m)
	}
}

func TestFlips(t *testing.T) {
	var p Pair
	for i := range 100 {
		l := []string{"setosa", "versicolor", "virginica"}[i%3]
		s := l
		if i%10 == 9 {
			s = "setosa"
		}
		p.AddClass(l, s)
	}
	want := []Flip{{"versicolor", "setosa", 3}, {"virginica", "setosa", 3}}
	if diff := cmp.Diff(want, p.Flips()); diff != "" {
		t.Errorf("flips (-want +got):\n%s", diff)
	}
	var q Pair
	for i := range MaxClasses + 5 {
		q.AddClass(string(rune('A'+i)), "x")
	}
	if len(q.Classes) != MaxClasses+1 || q.Classes[OtherClass]["x"] != 5 {
		t.Errorf("got %d live labels, other %d; want %d and 5", len(q.Classes), q.Classes[OtherClass]["x"], MaxClasses+1)
	}
}

func TestGates(t *testing.T) {
	g := Gates{MaxErrorRate: 0.05, MaxLatencyRatio: 1.5, MinAgreement: 0.95, MaxContractViolationRate: 0.01}
	fig := func(req, errs, viol int, lat float64) *Deployment {
		d := &Deployment{}
		for i := range req {
			code := 200
			switch {
			case i < errs:
				code = 500
			case i < errs+viol:
				code = 422
			}
			d.Observe(code, lat)
		}
		return d
	}
	tests := []struct {
		name       string
		cand, base *Deployment
		ref        float64
		want       string
	}{
		{"healthy", fig(20, 1, 0, 0.010), fig(100, 0, 0, 0.010), 0, ""},
		{"errors", fig(20, 7, 0, 0.010), fig(100, 0, 0, 0.010), 0, "error rate 35 % (7 of 20 requests) > max 5 %"},
		{"contract", fig(100, 0, 2, 0.010), fig(100, 0, 0, 0.010), 0, "contract violation rate 2 % (2 of 100 requests) > max 1 %"},
		{"slow", fig(20, 0, 0, 0.050), fig(100, 0, 0, 0.010), 0, "p99 latency 50.0 ms is 5.00× the live deployments' 10.0 ms > max 1.50×"},
		{"slow against the reference", fig(20, 0, 0, 0.050), fig(0, 0, 0, 0), 0.010, "p99 latency 50.0 ms is 5.00× the live deployments' 10.0 ms > max 1.50×"},
		{"no baseline, no reference", fig(20, 0, 0, 0.050), nil, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := g.Live(tt.cand, tt.base, tt.ref, 20); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	p := &Pair{ShadowRequests: 100, Predictions: 100, Agreed: 90}
	if got, want := g.Shadow(p), "agreement 90 % (90 of 100 predictions) < min 95 %"; got != want {
		t.Errorf("shadow: got %q, want %q", got, want)
	}
}
