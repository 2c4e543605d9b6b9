package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// trickle sends a POST with a body of size bytes, chunk bytes every every,
// on a raw connection, and returns the status the gateway answered (0 if
// the connection ended first). It stops writing when the answer arrives or
// stop is closed.
func trickle(t *testing.T, front *httptest.Server, size, chunk int, every time.Duration, stop <-chan struct{}) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /endpoints/ep/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", testKey, size)
	answered := make(chan struct{})
	go func() {
		defer c.(*net.TCPConn).CloseWrite()
		for sent := 0; sent < size; sent += chunk {
			select {
			case <-answered:
				return
			case <-stop:
				return
			case <-time.After(every):
			}
			if _, err := c.Write([]byte(strings.Repeat("x", min(chunk, size-sent)))); err != nil {
				return
			}
		}
	}()
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	close(answered)
	if err != nil {
		return 0, ""
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(b)
}

// slotBackend is one instance that serves one request at a time and says
// how many request bodies of each size it saw.
func slotBackend(t *testing.T) (string, func() []int) {
	var mu sync.Mutex
	var sizes []int
	return backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		sizes = append(sizes, len(b))
		mu.Unlock()
		io.WriteString(w, `{"ok":true}`)
	}), func() []int { mu.Lock(); defer mu.Unlock(); return append([]int(nil), sizes...) }
}

// TestSlowBodyHoldsNoSlot is defect 4: a client with a valid key trickling
// a 100 KB body held the deployment's only slot (bodies over 64 KiB were
// streamed after a slot was taken). Now a body that fits the deployment's
// buffer budget is read whole first: while it trickles, another client is
// served by the one instance.
func TestSlowBodyHoldsNoSlot(t *testing.T) {
	addr, seen := slotBackend(t)
	d := dep("blue", addr)
	d.MaxConcurrentPerInstance = 1
	d.RequestTimeout = 3 * time.Second
	g, _, front := newTestGateway(t, Config{BodyGrace: time.Minute})
	g.Update(snapshot(endpoint("ep", d)))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { trickle(t, front, 100_000, 100, 50*time.Millisecond, stop) })
	time.Sleep(300 * time.Millisecond) // the slow body is on its way

	res, body := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), `{"x":1}`)
	if res.StatusCode != http.StatusOK {
		t.Errorf("a request while another trickles its body: got %d %s, want 200 (the slow one must not hold the slot)", res.StatusCode, body)
	}
	close(stop)
	wg.Wait()
	for _, n := range seen() {
		if n != len(`{"x":1}`) {
			t.Errorf("the instance got a %d-byte body: the incomplete slow one reached it", n)
		}
	}
}

// TestSlowBodyRateEnforced: a body that is streamed (the deployment's
// buffer budget is spent, here zero) must arrive at the minimum rate: a
// trickling client gets 408 saying why, and the slot it held is free for
// the next client.
func TestSlowBodyRateEnforced(t *testing.T) {
	addr, _ := slotBackend(t)
	d := dep("blue", addr)
	d.MaxConcurrentPerInstance = 1
	d.RequestTimeout = 5 * time.Second
	g, _, front := newTestGateway(t, Config{BodyBufferBytes: -1, MinBodyRate: 32 << 10, BodyGrace: 200 * time.Millisecond})
	g.Update(snapshot(endpoint("ep", d)))

	stop := make(chan struct{})
	defer close(stop)
	var status int
	var body string
	var wg sync.WaitGroup
	wg.Go(func() { status, body = trickle(t, front, 100_000, 100, 50*time.Millisecond, stop) })
	time.Sleep(300 * time.Millisecond)
	res, b := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), `{"x":1}`)
	if res.StatusCode != http.StatusOK {
		t.Errorf("the next client: got %d %s, want 200 once the slow body was cut off", res.StatusCode, b)
	}
	wg.Wait()
	if status != http.StatusRequestTimeout || !strings.Contains(body, "more slowly") {
		t.Errorf("the trickling client: got %d %s, want 408 saying its body arrived too slowly", status, body)
	}
}

// TestMirrorMemoryBudget is defect 5: mirroring buffered whole bodies with
// no overall cap (16 concurrent 90 MiB bodies took the server from 184 to
// 639 MiB). The bodies held for mirrored copies now fit a gateway-wide
// budget; a copy that does not fit is dropped and counted, the live
// request served as usual.
func TestMirrorMemoryBudget(t *testing.T) {
	live := okBackend(t, `{"live":true}`)
	release := make(chan struct{})
	shadow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-release // a slow shadow deployment holds its copies
		io.WriteString(w, `{}`)
	})
	blue, green := dep("blue", live), dep("green", shadow)
	green.MaxConcurrentPerInstance = 16
	ep := endpoint("ep", blue, green)
	ep.Mirror = map[string]int{"green": 100}
	const budget = 1 << 20
	g, reg, front := newTestGateway(t, Config{MirrorMemoryBytes: budget})
	g.Update(snapshot(ep))
	body := strings.Repeat("b", 400_000)
	for i := range 10 {
		res, b := call(t, front, "POST", "/endpoints/ep/score", bearer(testKey), body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: got %d %s", i, res.StatusCode, b)
		}
		if used := g.mirrorMem.used.Load(); used > budget {
			t.Errorf("after request %d: %d bytes held for mirrored copies, over the %d budget", i, used, budget)
		}
	}
	labels := func(result string) map[string]string {
		return map[string]string{"endpoint": "ep", "deployment": "green", "result": result}
	}
	if got := metricValue(t, reg, "plumbline_mirrored_requests_total", labels("dropped")); got != 8 {
		t.Errorf("dropped copies: got %v, want 8 (two 400 kB bodies fit 1 MiB)", got)
	}
	close(release)
	waitUntil(t, 5*time.Second, "the held copies finish and give their memory back", func() bool {
		return g.mirrorMem.used.Load() == 0 && metricValue(t, reg, "plumbline_mirrored_requests_total", labels("sent")) == 2
	})
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
