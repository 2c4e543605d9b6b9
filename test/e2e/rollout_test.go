package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// routeServer serves POST only on $SCORE_PATH (404 elsewhere), as a model
// server that moved its route would: a request sent to the other path
// would fail.
const routeServer = `import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
path = os.environ["SCORE_PATH"]
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200 if self.path in ("/live", "/ready") else 404); self.end_headers()
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0); self.rfile.read(n)
        code = 200 if self.path == path else 404
        body = ('{"served": "%s"}' % self.path).encode()
        self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`

func routeDeployment(route string) string {
	return fmt.Sprintf(`name: blue
endpoint_name: routes
code_configuration: {code: ./src, scoring_script: server.py}
environment:
  plumbline: {runtime: generic, command: ["python3", "{code_dir}/server.py", "{port}"]}
  inference_config:
    liveness_route: {port: 5001, path: /live}
    readiness_route: {port: 5001, path: /ready}
    scoring_route: {port: 5001, path: %s}
environment_variables: {SCORE_PATH: %s}
instance_type: Standard_DS2_v2
instance_count: 2
request_settings: {max_concurrent_requests_per_instance: 4}
`, route, route)
}

// TestScoringRouteChangeUnderLoad rolls a scoring_route change (/score →
// /predict, the server moving with it) out to two instances while requests
// flow: during the rolling update old and new instances serve side by side,
// and no request may reach a path its instance does not serve.
func TestScoringRouteChangeUnderLoad(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		skip(t, "python3 is not installed")
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "src", "server.py"), routeServer)
	writeFile(t, filepath.Join(dir, "endpoint.yml"), "name: routes\nauth_mode: key\n")
	writeFile(t, filepath.Join(dir, "v1.yml"), routeDeployment("/score"))
	writeFile(t, filepath.Join(dir, "v2.yml"), routeDeployment("/predict"))
	s := startServer(t, newDataDir(t))
	s.mustIn(t, dir, "online-endpoint", "create", "-f", "endpoint.yml")
	s.mustIn(t, dir, "online-deployment", "create", "-f", "v1.yml", "--all-traffic", "--skip-script-validation")
	c := s.httpClient(t)
	uri, key := s.endpoint(t, "routes").ScoringURI, s.keys(t, "routes").PrimaryKey

	var sent, failed atomic.Int64
	seen := sync.Map{} // body → true
	var first atomic.Value
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				rep, err := tryScore(c, uri, key, "", `{}`)
				sent.Add(1)
				if err != nil || rep.status != http.StatusOK {
					failed.Add(1)
					first.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", rep.status, rep.body, err))
					continue
				}
				seen.Store(rep.body, true)
			}
		})
	}
	s.mustIn(t, dir, "online-deployment", "update", "-f", "v2.yml")
	s.waitDeploymentReady(t, "routes", "blue", 2, time.Minute)
	time.Sleep(300 * time.Millisecond) // a little load after the rollout too
	stop()
	wg.Wait()
	t.Logf("scoring_route /score → /predict under load: %d requests, %d failed", sent.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during the rollout; first: %v", failed.Load(), sent.Load(), first.Load())
	}
	for _, b := range []string{`{"served": "/score"}`, `{"served": "/predict"}`} {
		if _, ok := seen.Load(b); !ok {
			t.Errorf("no request was answered %s: the load did not span the rollout", b)
		}
	}
}
