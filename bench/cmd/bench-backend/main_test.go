package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// The backend must count the most scoring requests it ever had in flight:
// the overload benchmark's check rests on it.
func TestMaxInFlight(t *testing.T) {
	srv := httptest.NewServer(handler(&counter{}, 50*time.Millisecond))
	defer srv.Close()
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Post(srv.URL+"/score", "application/json", nil)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
		}()
	}
	wg.Wait()
	res, err := http.Get(srv.URL + "/max")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m struct{ Max, InFlight, Requests int }
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m.Max != 3 || m.Requests != 3 {
		t.Errorf("got max %d after %d requests, want 3 after 3 (three requests overlapped)", m.Max, m.Requests)
	}
}
