package gateway

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestServerTiming(t *testing.T) {
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		w.WriteHeader(http.StatusInternalServerError)
	})
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", dep("blue", slow))))
	res, _ := call(t, front, "POST", "/endpoints/ep/score", map[string]string{"Authorization": "Bearer " + testKey}, `{}`)
	if res.StatusCode != http.StatusFailedDependency {
		t.Fatalf("status %d, want 424", res.StatusCode)
	}
	v := res.Header.Get("Server-Timing")
	m := regexp.MustCompile(`^queue;dur=(\d+\.\d{3}), model;dur=(\d+\.\d{3})$`).FindStringSubmatch(v)
	if m == nil {
		t.Fatalf("Server-Timing = %q, want queue;dur=…, model;dur=… in milliseconds", v)
	}
	if model, _ := strconv.ParseFloat(m[2], 64); model < 20 {
		t.Errorf("model;dur=%s ms, want at least the backend's 20 ms", m[2])
	}
}
