package containers

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestScaleToZeroContainer: the autoscaler works on the docker driver as
// on the process driver. A custom container deployment with
// scale_settings target_utilization and min_instances 0 stops its container
// after scale_to_zero_after without a request; three requests sent at zero
// are held while a container starts, and all are answered.
func TestScaleToZeroContainer(t *testing.T) {
	s := newServer(t)
	dir := copyExample(t, "python-generic")
	doc, err := os.ReadFile(filepath.Join(dir, "container-deployment.yml"))
	if err != nil {
		t.Fatal(err)
	}
	auto := strings.Replace(string(doc), "instance_count: 1\n", `request_settings:
  request_timeout_ms: 60000
scale_settings:
  type: target_utilization
  min_instances: 0
  max_instances: 2
plumbline:
  autoscale:
    scale_to_zero_after: 2
`, 1)
	if auto == string(doc) {
		t.Fatalf("container-deployment.yml changed shape (no instance_count: 1):\n%s", doc)
	}
	if err := os.WriteFile(filepath.Join(dir, "auto.yml"), []byte(auto), 0o644); err != nil {
		t.Fatal(err)
	}
	s.must(dir, "online-endpoint", "create", "-f", "endpoint.yml")
	s.must(dir, "online-deployment", "create", "-f", "auto.yml", "--all-traffic")
	waitFor(t, 90*time.Second, "the container stopped at zero instances", func() (bool, string) {
		d := s.show("py-endpoint", "blue")
		return len(d.Instances) == 0 && len(s.running()) == 0, s.events("py-endpoint", "blue")
	})

	var wg sync.WaitGroup
	outs := make([]result, 3)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = s.cli(dir, "online-endpoint", "invoke", "--name", "py-endpoint", "--request-file", "sample_request.json")
		}()
	}
	wg.Wait()
	for i, r := range outs {
		if got := strings.Join(strings.Fields(r.stdout), ""); r.code != 0 || got != `{"predictions":[4.1,-1.65]}` {
			t.Errorf("request %d at zero instances: %s; want the prediction after a cold start", i, r)
		}
	}
	if n := len(s.running()); n < 1 {
		t.Errorf("%d containers run after the requests, want at least 1", n)
	}
	ev := s.events("py-endpoint", "blue")
	for _, want := range []string{"scaled 1 → 0: no request for", "(scale from zero)"} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %q:\n%s", want, ev)
		}
	}
}
