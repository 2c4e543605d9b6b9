package apiserver_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/store"
)

// An autoscaled deployment shows its scale status (the autoscaler's stored
// decision) and takes a pre-warm; a fixed one refuses it and says how to
// scale instead.
func TestPrewarmAndScaleStatus(t *testing.T) {
	f := newFixture(t)
	f.mustDo("POST", "/endpoints", []byte("name: zero\nauth_mode: key\n"), 201)
	code := f.upload(writeFiles(t, filepath.Join(t.TempDir(), "src"), map[string]string{"score.py": "x"}))
	doc := func(name, scale string) []byte {
		return []byte(strings.NewReplacer("CODE", code.Digest, "NAME", name).Replace(`name: NAME
endpoint_name: zero
code_configuration: {code: CODE, scoring_script: score.py}
environment:
  image: python:3
  plumbline: {runtime: generic, command: ["python3", "{code_dir}/score.py"]}
  inference_config:
    liveness_route: {port: 8000, path: /live}
    readiness_route: {port: 8000, path: /ready}
    scoring_route: {port: 8000, path: /score}
instance_type: Standard_DS2_v2
`) + scale)
	}
	f.mustDo("POST", "/endpoints/zero/deployments", doc("blue", "scale_settings: {type: target_utilization, min_instances: 0, max_instances: 3}\nplumbline: {autoscale: {scale_to_zero_after: 120}}\n"), 201)
	f.mustDo("POST", "/endpoints/zero/deployments", doc("fixed", "instance_count: 1\n"), 201)

	show := func(name string) api.Deployment {
		var d api.Deployment
		if err := json.Unmarshal(f.mustDo("GET", "/endpoints/zero/deployments/"+name, nil, 200), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	st := show("blue").ScaleStatus
	if st == nil || st.MinInstances != 0 || st.MaxInstances != 3 || st.DesiredInstances != 1 || st.LastDecision != "" {
		t.Fatalf("scale status before any decision: %+v, want bounds 0–3 and the starting count 1", st)
	}
	if show("fixed").ScaleStatus != nil {
		t.Error("a fixed deployment shows a scale status")
	}
	decided := time.Date(2026, 11, 24, 11, 59, 0, 0, time.UTC)
	if _, err := f.st.UpdateScale(context.Background(), "zero", "blue", func(sc *store.Scale) error {
		sc.Desired, sc.DecidedAt, sc.Decision, sc.Utilization = 0, decided, "scaled 1 → 0: no request for 2m0s (min_instances 0)", 0
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if st := show("blue").ScaleStatus; st.DesiredInstances != 0 || !strings.HasPrefix(st.LastDecision, "scaled 1 → 0") || !st.LastDecisionAt.Equal(decided) {
		t.Errorf("scale status after a decision: %+v", st)
	}

	notified := f.rt.notified
	var d api.Deployment
	if err := json.Unmarshal(f.mustDo("POST", "/endpoints/zero/deployments/blue/prewarm", []byte(`{"instances": 2, "duration_seconds": 600}`), 202), &d); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) // the fixture's clock
	if st := d.ScaleStatus; st == nil || st.PrewarmInstances != 2 || !st.PrewarmUntil.Equal(now.Add(10*time.Minute)) {
		t.Errorf("after a pre-warm: %+v, want 2 instances until 12:10", d.ScaleStatus)
	}
	if f.rt.notified == notified {
		t.Error("the runtime was not notified of the pre-warm")
	}
	sc, err := f.st.GetScale(context.Background(), "zero", "blue")
	if err != nil || sc.PrewarmInstances != 2 || sc.Desired != 0 {
		t.Errorf("stored scale %+v (%v), want the pre-warm kept next to the decision", sc, err)
	}
	evs := string(f.mustDo("GET", "/endpoints/zero/deployments/blue/events", nil, 200))
	if !strings.Contains(evs, "pre-warm: at least 2 instance(s) until 2026-11-24T12:10:00Z") {
		t.Errorf("events lack the pre-warm: %s", evs)
	}
	// Defaults: min_instances or 1, for scale_to_zero_after.
	if err := json.Unmarshal(f.mustDo("POST", "/endpoints/zero/deployments/blue/prewarm", []byte(`{}`), 202), &d); err != nil {
		t.Fatal(err)
	}
	if st := d.ScaleStatus; st.PrewarmInstances != 1 || !st.PrewarmUntil.Equal(now.Add(2*time.Minute)) {
		t.Errorf("default pre-warm: %+v, want 1 instance for scale_to_zero_after (2m)", st)
	}
	if err := json.Unmarshal(f.mustDo("POST", "/endpoints/zero/deployments/blue/prewarm", []byte(`{"cancel": true}`), 202), &d); err != nil {
		t.Fatal(err)
	}
	if st := d.ScaleStatus; st.PrewarmInstances != 0 || st.PrewarmUntil != nil {
		t.Errorf("after cancel: %+v, want no pre-warm", st)
	}

	for _, tc := range []struct {
		path, body string
		code       int
		want       string
	}{
		{"/endpoints/zero/deployments/fixed/prewarm", `{}`, 400, "has a fixed instance_count (scale_settings type default): pre-warm is for autoscaled deployments"},
		{"/endpoints/zero/deployments/blue/prewarm", `{"instances": 4}`, 400, "instances must be from 1 to max_instances (3); got 4"},
		{"/endpoints/zero/deployments/blue/prewarm", `{"duration_seconds": -5}`, 400, "duration_seconds must be from 1 to 604800"},
		{"/endpoints/zero/deployments/blue/prewarm", `{"instances": "two"}`, 400, "invalid JSON body"},
		{"/endpoints/zero/deployments/nope/prewarm", `{}`, 404, "deployment nope not found"},
	} {
		got, b := f.do("POST", tc.path, "application/json", []byte(tc.body))
		if got != tc.code || !strings.Contains(string(b), tc.want) {
			t.Errorf("POST %s %s: got %d %s, want %d with %q", tc.path, tc.body, got, b, tc.code, tc.want)
		}
	}
}
