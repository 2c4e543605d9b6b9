// Command bench-backend is the trivial scoring server the benchmark harness
// (bench/cmd/plumbline-bench) puts behind nginx and plumbline: it answers
// every scoring request at once with a small JSON prediction, so that what a
// benchmark measures is the hop in front of it.
//
//	bench-backend --port 8000 [--host 127.0.0.1] [--delay 20ms]
//
// Routes:
//
//	POST|GET /score  {"prediction":[0.42]} (after --delay, if set)
//	GET /max         {"max":N,"in_flight":n,"requests":r}: the most scoring
//	                 requests it ever had in flight at once, counted here at
//	                 the backend (the overload benchmark checks it against
//	                 max_concurrent_requests_per_instance)
//	GET /live, /ready 200 ok
//
// The port comes from --port, else the PORT environment variable (plumbline's
// generic runtime sets both). SIGTERM or SIGINT stops it gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// counter tracks scoring requests in flight; hot path, so atomics only.
type counter struct {
	inFlight atomic.Int64
	max      atomic.Int64
	total    atomic.Int64
}

func (c *counter) enter() {
	n := c.inFlight.Add(1)
	c.total.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (c *counter) leave() { c.inFlight.Add(-1) }

var prediction = []byte(`{"prediction":[0.42]}`)

func handler(c *counter, delay time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/score", func(w http.ResponseWriter, r *http.Request) {
		c.enter()
		defer c.leave()
		_, _ = io.Copy(io.Discard, r.Body)
		if delay > 0 {
			time.Sleep(delay)
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(prediction))}
		_, _ = w.Write(prediction)
	})
	mux.HandleFunc("GET /max", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"max":%d,"in_flight":%d,"requests":%d}`, c.max.Load(), c.inFlight.Load(), c.total.Load())
	})
	ok := func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") }
	mux.HandleFunc("GET /live", ok)
	mux.HandleFunc("GET /ready", ok)
	return mux
}

func main() {
	port := flag.Int("port", 0, "port to listen on (default: $PORT)")
	host := flag.String("host", "127.0.0.1", "address to listen on")
	delay := flag.Duration("delay", 0, "time each scoring request takes (0: answer at once)")
	flag.Parse()
	if *port == 0 {
		p, err := strconv.Atoi(os.Getenv("PORT"))
		if err != nil || p <= 0 {
			fmt.Fprintln(os.Stderr, "bench-backend: give --port or set PORT")
			os.Exit(2)
		}
		*port = p
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-backend:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: handler(&counter{}, *delay), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "bench-backend:", err)
		os.Exit(1)
	}
}
