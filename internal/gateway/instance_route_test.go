package gateway

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
)

// TestInstanceKeepsItsOwnScoringPath: during a rolling update that changes
// scoring_route, the old instance serves only /score and the new one only
// /predict; every request must reach a path its instance serves.
func TestInstanceKeepsItsOwnScoringPath(t *testing.T) {
	only := func(path, body string) string {
		return backend(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != path {
				http.Error(w, "no route "+r.URL.Path, http.StatusNotFound)
				return
			}
			io.WriteString(w, body)
		})
	}
	g, _, front := newTestGateway(t, Config{})
	d := dep("blue")
	d.ScoringPath = "/predict" // the new plan's
	d.Instances = []Instance{
		{Name: "blue-0", Addr: only("/score", "old"), ScoringPath: "/score"},
		{Name: "blue-1", Addr: only("/predict", "new"), ScoringPath: "/predict", MaxConcurrent: 2},
	}
	g.Update(snapshot(endpoint("ep", d)))
	seen := map[string]int{}
	for range 40 {
		res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), `{}`)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("got %d %q, want 200 from whichever instance served", res.StatusCode, body)
		}
		seen[body]++
	}
	if seen["old"] == 0 || seen["new"] == 0 {
		t.Errorf("responses %v, want both instances used", seen)
	}
	if st := g.Stats(); len(st) != 1 || st[0].Capacity != 2*4+2*2 {
		t.Errorf("Stats() = %+v, want capacity 2×4 (blue-0, the deployment's limit) + 2×2 (blue-1's own)", st)
	}
}

// TestUnixSocketInstance: an instance address "unix:/path" is reached over
// the unix socket.
func TestUnixSocketInstance(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "over unix "+r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", dep("blue", "unix:"+sock))))
	res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), `{}`)
	if res.StatusCode != http.StatusOK || body != "over unix /score" {
		t.Errorf("got %d %q, want 200 %q", res.StatusCode, body, "over unix /score")
	}
}
