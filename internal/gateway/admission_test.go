package gateway

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestNo429WithinCapacity: Azure admits 2 × max_concurrent_requests_per_
// instance × instances requests at once; clients that never have more than
// that outstanding never get 429, however slowly the machine runs (a
// request's slot must be free once its client has the whole answer).
func TestNo429WithinCapacity(t *testing.T) {
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	})
	d := dep("blue", addr)
	d.MaxConcurrentPerInstance = 1
	g, _, front := newTestGateway(t, Config{})
	g.Update(snapshot(endpoint("ep", d)))

	const clients, each = 2, 1500 // 2 × 1 × 1 instance
	var (
		mu    sync.Mutex
		codes = map[int]int{}
		wg    sync.WaitGroup
	)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				res, _ := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), "{}")
				mu.Lock()
				codes[res.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if codes[http.StatusOK] != clients*each {
		t.Errorf("%d clients × %d requests on capacity %d: statuses %v, want all 200", clients, each, 2*d.MaxConcurrentPerInstance, codes)
	}
}
