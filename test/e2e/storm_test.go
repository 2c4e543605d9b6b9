package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestConnectionStormLeavesRoomForOthers checks that scoring works over
// HTTP/2 too, then floods `plumbline serve` (TLS, the default) with 5 000 connections that never send a byte and 200 slowloris
// clients that complete a TLS handshake and then send their request head
// one byte at a time, from twenty other loopback addresses, and checks that
// a well-behaved client is served all along — on its kept-alive connection
// and on new ones, with no 5xx — that the server held the flood (it did not
// refuse it) and that its memory stayed bounded. The same storm's effect on
// latency is a figure of the benchmark harness, not asserted here.
func TestConnectionStormLeavesRoomForOthers(t *testing.T) {
	requireBinary(t)
	dd := newDataDir(t)
	s := startServer(t, dd)
	dir := t.TempDir()
	backend := filepath.Join(dir, "bench-backend")
	build := exec.Command("go", "build", "-o", backend, "./bench/cmd/bench-backend")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build bench-backend: %v\n%s", err, out)
	}
	writeFile(t, filepath.Join(dir, "deployment.yml"), `name: blue
endpoint_name: storm
environment:
  plumbline:
    runtime: generic
    command: ["`+backend+`", "--port", "{port}"]
  inference_config:
    liveness_route: {port: 8000, path: /live}
    readiness_route: {port: 8000, path: /ready}
    scoring_route: {port: 8000, path: /score}
request_settings:
  max_concurrent_requests_per_instance: 64
instance_type: Standard_DS3_v2
instance_count: 1
`)
	s.must(t, "online-endpoint", "create", "--name", "storm", "--auth-mode", "key")
	s.mustIn(t, dir, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic")
	c := s.httpClient(t)
	uri, key := s.endpoint(t, "storm").ScoringURI, s.keys(t, "storm").PrimaryKey
	body := `{"data":[[5.1,3.5,1.4,0.2]]}`
	served := func(phase string, client *http.Client, n int) {
		t.Helper()
		for i := range n {
			rep := scoreRouted(t, client, uri, key, "", body)
			if rep.status != http.StatusOK {
				t.Fatalf("%s, request %d: got %d %s, want 200", phase, i, rep.status, rep.body)
			}
		}
	}
	served("before the storm", c, 50)

	// HTTP/2 over TLS reaches the same endpoint.
	h2 := s.httpClient(t)
	h2.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	req, _ := http.NewRequest(http.MethodPost, uri, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := h2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || res.Header.Get("azureml-model-deployment") != "blue" {
		t.Errorf("over HTTP/2: got %s %d from %q, want HTTP/2.0 200 from blue", res.Proto, res.StatusCode, res.Header.Get("azureml-model-deployment"))
	}

	u, err := url.Parse(s.state.URL)
	if err != nil {
		t.Fatal(err)
	}
	addr := u.Host
	silent := stormSize(t)
	var mu sync.Mutex
	var flood []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range flood {
			_ = c.Close()
		}
	})
	dial := func(src int) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(src))}, Timeout: 10 * time.Second}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood connection from 127.0.0.%d: %v", src, err)
		}
		mu.Lock()
		flood = append(flood, conn)
		mu.Unlock()
		return conn
	}
	start := time.Now()
	for i := range silent {
		dial(20 + i%20)
	}
	stop := make(chan struct{})
	defer close(stop)
	tlsCfg := &tls.Config{RootCAs: caPool(t, dd), ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	var hs sync.WaitGroup
	for i := range 200 {
		conn := tls.Client(dial(40+i%4), tlsCfg)
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		if err := conn.Handshake(); err != nil {
			t.Fatalf("slowloris %d: handshake: %v", i, err)
		}
		hs.Add(1)
		go func() {
			defer hs.Done()
			head := "POST " + u.Path + "/endpoints/storm/score HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + strings.Repeat("a", 1000)
			for j := 0; j < len(head); j++ {
				if _, err := conn.Write([]byte{head[j]}); err != nil {
					return // the server's header timeout closed it
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	t.Logf("storm: %d silent connections and 200 slowloris clients from 24 addresses, set up in %s", silent, time.Since(start).Round(time.Millisecond))

	metrics := s.metrics(t, c)
	if open := metricValue(metrics, "plumbline_connections_open"); open < float64(silent) {
		t.Errorf("the server holds %v connections, want the whole flood (%d) held, not refused", open, silent)
	}
	served("during the storm, kept-alive connection", c, 200)
	fresh := s.httpClient(t)
	fresh.Transport.(*http.Transport).DisableKeepAlives = true
	served("during the storm, new connections", fresh, 50)

	metrics = s.metrics(t, c)
	if n := metricValue(metrics, "plumbline_connections_refused_total"); n != 0 {
		t.Errorf("%v connections refused", n)
	}
	for code := 500; code < 600; code++ {
		if n := metricValue(metrics, "plumbline_requests_total", `code="`+strconv.Itoa(code)+`"`); n > 0 {
			t.Errorf("%v answers %d", n, code)
		}
	}
	rss, hwm := serverMemory(t, s.pid())
	t.Logf("plumbline serve during the storm: RSS %d MiB, peak %d MiB", rss>>20, hwm>>20)
	if hwm > 512<<20 {
		t.Errorf("plumbline serve peaked at %d MiB holding %d idle connections: memory is not bounded", hwm>>20, silent+200)
	}
}

// stormSize is how many silent connections the flood opens: 5 000, unless
// the open-file limit cannot take both ends of them in this machine's two
// processes.
func stormSize(t *testing.T) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	n := min(5000, int(rl.Max/2)-1000)
	if n < 1000 {
		skip(t, fmt.Sprintf("the open-file limit (%d) is too small for a connection storm; raise ulimit -n", rl.Max))
	}
	return n
}

// serverMemory reads VmRSS and VmHWM of pid, in bytes.
func serverMemory(t *testing.T, pid int) (rss, hwm uint64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "VmHWM:":
			hwm = v << 10
		}
	}
	return rss, hwm
}
