package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startPlumber runs testdata/hello.R under plumber on a free port and returns
// its address; the process is killed when the benchmark ends. It skips when
// Rscript or the plumber package is missing.
func startPlumber(b *testing.B) string {
	b.Helper()
	rscript, err := exec.LookPath("Rscript")
	if err != nil {
		b.Skip("Rscript not found; install R to run the plumber benchmark")
	}
	if err := exec.Command(rscript, "-e", `quit(status = if (requireNamespace("plumber", quietly = TRUE)) 0 else 1)`).Run(); err != nil {
		b.Skip("the R package plumber is not installed (install.packages(\"plumber\") or apt install r-cran-plumber)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	file, err := filepath.Abs("testdata/hello.R")
	if err != nil {
		b.Fatal(err)
	}
	expr := `pr <- plumber::plumb(` + strconv.Quote(file) + `); pr$run(host = "127.0.0.1", port = ` + strconv.Itoa(port) + `, docs = FALSE, quiet = TRUE)`
	cmd := exec.Command(rscript, "-e", expr)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start plumber: %v", err)
	}
	pgid := cmd.Process.Pid
	b.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // the group this benchmark started
		_ = cmd.Wait()
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := probe.Get("http://" + addr + "/hello")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == 200 {
				return addr
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("plumber did not answer on %s within 60 s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runRPS sends b.N sequential GETs to url over client (one connection at a
// time) and reports requests per second.
func runRPS(b *testing.B, client *http.Client, url string, hdr http.Header) float64 {
	b.Helper()
	get := func() {
		req, _ := http.NewRequest("GET", url, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("GET %s: got %d, want 200", url, res.StatusCode)
		}
	}
	get() // warm the connection
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		get()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	rps := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rps, "req/s")
	b.ReportMetric(0, "ns/op") // req/s is the figure that matters here
	b.ReportMetric(float64(elapsed.Microseconds())/float64(b.N)/1000, "ms/req")
	return rps
}

// BenchmarkPlumberUpstream measures, side by side against one real plumber
// process at one connection: (a) a naive keep-alive Go client, which stalls
// 40 ms per request on httpuv's Nagle versus our delayed ACK; (b)
// Connection: close; (c) NewUpstreamTransport used directly (keep-alive,
// TCP_QUICKACK re-armed before each read); (d) the gateway in front, which
// uses (c) upstream. The summary line gives gateway/naive, the figure the
// performance goal G4 is about (>= 12×).
//
//	go test -run '^$' -bench PlumberUpstream -benchtime 3s ./internal/gateway/
func BenchmarkPlumberUpstream(b *testing.B) {
	addr := startPlumber(b)
	direct := "http://" + addr + "/hello"
	rps := map[string]float64{}

	b.Run("naive-keepalive", func(b *testing.B) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		defer tr.CloseIdleConnections()
		rps["naive"] = runRPS(b, &http.Client{Transport: tr}, direct, nil)
	})
	b.Run("connection-close", func(b *testing.B) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DisableKeepAlives = true
		rps["close"] = runRPS(b, &http.Client{Transport: tr}, direct, nil)
	})
	b.Run("quickack-direct", func(b *testing.B) {
		tr := NewUpstreamTransport()
		defer tr.CloseIdleConnections()
		rps["quickack"] = runRPS(b, &http.Client{Transport: tr}, direct, nil)
	})
	b.Run("gateway", func(b *testing.B) {
		g, err := New(Config{})
		if err != nil {
			b.Fatal(err)
		}
		d := &Deployment{
			Name: "blue", ScoringPath: "/hello", RequestTimeout: 10 * time.Second,
			MaxConcurrentPerInstance: 1, Instances: []Instance{{Name: "blue-0", Addr: addr}},
		}
		g.Update(&Snapshot{Endpoints: map[string]*Endpoint{"bench": {
			Name: "bench", AuthMode: "key", Keys: []string{testKey},
			Traffic: map[string]int{"blue": 100}, Deployments: map[string]*Deployment{"blue": d},
		}}})
		front := httptest.NewServer(g)
		defer front.Close()
		client := front.Client() // keep-alive to the gateway: Go sets TCP_NODELAY on both ends
		rps["gateway"] = runRPS(b, client, front.URL+"/endpoints/bench/score",
			http.Header{"Authorization": {"Bearer " + testKey}})
		_ = g.Shutdown(context.Background())
	})

	if rps["naive"] > 0 && rps["gateway"] > 0 {
		// Printed, not logged: a parent benchmark's log is not shown.
		fmt.Printf("plumber /hello, one connection: naive keep-alive %.1f req/s, Connection: close %.0f req/s, "+
			"quickack direct %.0f req/s, gateway %.0f req/s; gateway/naive = %.1f×, gateway/close = %.2f×\n",
			rps["naive"], rps["close"], rps["quickack"], rps["gateway"], rps["gateway"]/rps["naive"], rps["gateway"]/rps["close"])
	}
}

// BenchmarkGatewayOverhead measures the gateway's own cost per request
// against a trivial Go backend over loopback, parallel, with allocations.
//
//	go test -run '^$' -bench GatewayOverhead -benchmem ./internal/gateway/
func BenchmarkGatewayOverhead(b *testing.B) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"prediction":[0.42]}`)
	}))
	defer be.Close()
	addr := be.Listener.Addr().String()
	body := `{"data":[[1,2,3,4]]}`
	run := func(b *testing.B, url string, hdr http.Header) {
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("POST", url, strings.NewReader(body))
				for k, v := range hdr {
					req.Header[k] = v
				}
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode != 200 {
					b.Errorf("got %d, want 200", res.StatusCode)
					return
				}
			}
		})
	}
	b.Run("direct", func(b *testing.B) { run(b, "http://"+addr+"/score", nil) })
	b.Run("gateway", func(b *testing.B) {
		g, err := New(Config{})
		if err != nil {
			b.Fatal(err)
		}
		d := &Deployment{Name: "blue", ScoringPath: "/score", RequestTimeout: 10 * time.Second,
			MaxConcurrentPerInstance: 1024, Instances: []Instance{{Name: "blue-0", Addr: addr}}}
		g.Update(&Snapshot{Endpoints: map[string]*Endpoint{"ep": {
			Name: "ep", AuthMode: "key", Keys: []string{testKey}, Traffic: map[string]int{"blue": 100},
			Deployments: map[string]*Deployment{"blue": d},
		}}})
		front := httptest.NewServer(g)
		defer front.Close()
		run(b, front.URL+"/endpoints/ep/score", http.Header{"Authorization": {"Bearer " + testKey}})
	})
}

// BenchmarkServeHTTP is the gateway's in-process cost per request, without
// sockets: routing, auth, split, admission, proxying to a fake transport,
// metrics. Run with -benchmem to watch allocations.
func BenchmarkServeHTTP(b *testing.B) {
	g, err := New(Config{Transport: &fakeUpstream{}})
	if err != nil {
		b.Fatal(err)
	}
	ep := endpoint("ep", roomy("blue", "blue:1"), roomy("green", "green:1"))
	ep.Traffic = map[string]int{"blue": 90, "green": 10}
	g.Update(snapshot(ep))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/endpoints/ep/score", strings.NewReader(`{"x":1}`))
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("got %d", rec.Code)
		}
	}
}

// nagleServer mimics httpuv without R: keep-alive HTTP/1.1, Nagle on (no
// TCP_NODELAY), and every response written as two writes, headers then body.
// It reproduces the 40 ms stall of a naive keep-alive client.
func nagleServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*net.TCPConn).SetNoDelay(false)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					body := `{"msg":"hi"}`
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"); err != nil {
						return
					}
					if _, err := io.WriteString(c, body); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkNagleUpstream shows, without R, what NewUpstreamTransport fixes:
// against a server that splits its writes with Nagle on, a default Go
// keep-alive client waits for its own delayed ACK on every request.
func BenchmarkNagleUpstream(b *testing.B) {
	url := "http://" + nagleServer(b) + "/hello"
	b.Run("naive-keepalive", func(b *testing.B) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		defer tr.CloseIdleConnections()
		runRPS(b, &http.Client{Transport: tr}, url, nil)
	})
	b.Run("upstream-transport", func(b *testing.B) {
		tr := NewUpstreamTransport()
		defer tr.CloseIdleConnections()
		runRPS(b, &http.Client{Transport: tr}, url, nil)
	})
}
