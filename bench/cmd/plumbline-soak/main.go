// Command plumbline-soak runs the built `plumbline serve` for a long while
// (`make soak`: 10 minutes) under steady scoring load and a stream of the
// changes users make — traffic splits, mirroring, key regeneration,
// garbage-collection dry runs — on the iris example (two R deployments),
// and reports what a leak or a race would show: failed requests, failed
// changes, and the server's resident memory and open file descriptors at
// the start and the end.
//
// It exits 1 when any request (a transport error, any status but 200 and
// 429) or change failed, or the server died. Its
// numbers are what this machine did at that time: say how loaded it was
// when you quote them.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/proc"
	"github.com/plumbline/plumbline/bench/internal/rscript"
	"github.com/plumbline/plumbline/bench/internal/serve"
)

const endpoint = "r-endpoint-iris"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	bin, repo, rscript string
	duration           time.Duration
	clients            int
	churnEvery         time.Duration
	sampleEvery        time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := flag.NewFlagSet("plumbline-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.bin, "plumbline", os.Getenv("PLUMBLINE_BIN"), "the plumbline binary (env PLUMBLINE_BIN)")
	fs.StringVar(&cfg.repo, "repo", ".", "the repository (for examples/r-iris)")
	fs.StringVar(&cfg.rscript, "rscript", "Rscript", "R front end")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Minute, "how long to run the load")
	fs.IntVar(&cfg.clients, "clients", 2, "concurrent keep-alive clients (2: what one instance per deployment accepts without 429, 2 × max_concurrent_requests_per_instance)")
	fs.DurationVar(&cfg.churnEvery, "churn-every", 20*time.Second, "how often to change traffic (keys every 6th change, a gc dry run every 9th)")
	fs.DurationVar(&cfg.sampleEvery, "sample-every", 10*time.Second, "how often to sample memory and descriptors")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.bin == "" {
		fmt.Fprintln(stderr, "plumbline-soak: give the binary with -plumbline or PLUMBLINE_BIN (make soak builds it)")
		return 2
	}
	if err := soak(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "plumbline-soak: "+err.Error())
		return 1
	}
	return 0
}

// sample is one look at the server.
type sample struct {
	at             time.Duration
	rss            uint64 // server, bytes
	fds            int    // server
	instanceRSS    uint64 // every R instance, bytes
	instances      int
	requests, errs int64
}

func soak(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "soak: "+format+"\n", a...) }
	bin, err := filepath.Abs(cfg.bin)
	if err != nil {
		return err
	}
	repo, err := filepath.Abs(cfg.repo)
	if err != nil {
		return err
	}
	if err := rscript.Check(cfg.rscript); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "plumbline-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// A server running as root runs instances as an unprivileged user, who
	// must enter the data dir made in here.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(tmp, "logs"), 0o755); err != nil {
		return err
	}
	g := proc.NewGroup(filepath.Join(tmp, "logs"))
	defer g.StopAll()

	s, err := serve.Start(ctx, g, "serve", bin, filepath.Join(tmp, "data"), false)
	if err != nil {
		return err
	}
	example := filepath.Join(repo, "examples", "r-iris")
	models := filepath.Join(tmp, "iris", "models")
	logf("training the iris example")
	if err := rscript.Train(ctx, cfg.rscript, filepath.Join(example, "train.R"), models); err != nil {
		return err
	}
	steps := [][]string{
		{"model", "create", "--name", "iris-crate", "--path", models},
		{"online-endpoint", "create", "-f", filepath.Join(example, "endpoint.yml"), "--set", "auth_mode=key"},
		{"online-deployment", "create", "-f", filepath.Join(example, "deployment.yml"), "--all-traffic", "--skip-script-validation"},
		{"online-deployment", "create", "-f", filepath.Join(example, "green-deployment.yml"), "--skip-script-validation"},
	}
	for _, st := range steps {
		if _, err := s.CLI(ctx, st...); err != nil {
			return err
		}
	}
	for _, d := range []string{"blue", "green"} {
		if err := s.WaitReady(ctx, endpoint, d, 1, 3*time.Minute); err != nil {
			return err
		}
	}
	key, err := s.Key(ctx, endpoint)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(filepath.Join(example, "sample_request.json"))
	if err != nil {
		return err
	}

	pid := s.Proc.Pid()
	look := func(start time.Time, reqs, errs int64) sample {
		sm := sample{at: time.Since(start).Round(time.Second), requests: reqs, errs: errs}
		if m, err := proc.ReadMem(pid); err == nil {
			sm.rss = m.RSS
		}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			sm.fds = len(ents)
		}
		for _, c := range proc.Children(pid) {
			if m, err := proc.ReadMem(c); err == nil {
				sm.instanceRSS += m.RSS
				sm.instances++
			}
		}
		return sm
	}

	// Load.
	runCtx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	// 429s are admission control doing its job (two clients against a limit
	// of two in flight can overlap by a hair when a client's next request
	// arrives before the previous one's slot is released): counted, not
	// failures.
	var requests, failures, shed atomic.Int64
	codes := map[string]int{}
	var codesMu sync.Mutex // protects codes
	count := func(what string) {
		codesMu.Lock()
		codes[what]++
		codesMu.Unlock()
	}
	start := time.Now()
	first := look(start, 0, 0)
	logf("load: %d clients for %s; server pid %d, RSS %s, %d fds", cfg.clients, cfg.duration, pid, mib(first.rss), first.fds)
	var wg sync.WaitGroup
	for range cfg.clients {
		wg.Go(func() {
			tr := load.NewTransport(s.ClientOptions(true))
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			h := http.Header{"Authorization": {"Bearer " + key}, "Content-Type": {"application/json"}}
			for runCtx.Err() == nil {
				code, _, _, err := load.Do(runCtx, c, load.Target{Method: "POST", URL: s.ScoringURL(endpoint), Header: h, Body: body})
				if err != nil && runCtx.Err() != nil {
					return // cut off by the end of the run
				}
				requests.Add(1)
				switch {
				case err != nil:
					failures.Add(1)
					count("transport error: " + firstLine(err.Error()))
				case code == http.StatusTooManyRequests:
					shed.Add(1)
					count(fmt.Sprint(code))
				case code != http.StatusOK:
					failures.Add(1)
					count(fmt.Sprint(code))
				default:
					count("200")
				}
			}
		})
	}

	// Changes, as users make them, while the load runs.
	var changes, changeFailures atomic.Int64
	var changeErrs []string
	var changeMu sync.Mutex // protects changeErrs
	wg.Go(func() {
		plan := [][]string{
			{"online-endpoint", "update", "--name", endpoint, "--traffic", "blue=90 green=10"},
			{"online-endpoint", "update", "--name", endpoint, "--traffic", "blue=100 green=0", "--mirror-traffic", "green=10"},
			{"online-endpoint", "update", "--name", endpoint, "--traffic", "blue=50 green=50", "--mirror-traffic", "green=0"},
			{"online-endpoint", "update", "--name", endpoint, "--traffic", "green=100 blue=0"},
			{"online-endpoint", "update", "--name", endpoint, "--traffic", "blue=100 green=0"},
			{"online-endpoint", "regenerate-keys", "--name", endpoint, "--key-type", "secondary"},
		}
		t := time.NewTicker(cfg.churnEvery)
		defer t.Stop()
		do := func(step []string) {
			changes.Add(1)
			if _, err := s.CLI(runCtx, step...); err != nil && runCtx.Err() == nil {
				changeFailures.Add(1)
				changeMu.Lock()
				changeErrs = append(changeErrs, strings.ReplaceAll(err.Error(), "\n", " | "))
				changeMu.Unlock()
			}
		}
		for i := 0; ; i++ {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			// The steps in order (each valid after the one before: the
			// mirror target never gets live traffic), and every ninth
			// tick a gc dry run as well.
			do(plan[i%len(plan)])
			if i%9 == 8 {
				do([]string{"gc", "--dry-run", "-o", "json"})
			}
		}
	})

	// Samples.
	samples := []sample{first}
	var sampleMu sync.Mutex // protects samples
	wg.Go(func() {
		t := time.NewTicker(cfg.sampleEvery)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			sm := look(start, requests.Load(), failures.Load())
			sampleMu.Lock()
			samples = append(samples, sm)
			sampleMu.Unlock()
			logf("%6s: %d requests, %d failed; server RSS %s, %d fds; %d instances, %s", sm.at, sm.requests, sm.errs, mib(sm.rss), sm.fds, sm.instances, mib(sm.instanceRSS))
		}
	})
	wg.Wait()
	elapsed := time.Since(start)
	// Let the last changes settle and the load's connections close before
	// the final look.
	time.Sleep(2 * time.Second)
	last := look(start, requests.Load(), failures.Load())
	samples = append(samples, last)
	died := false
	select {
	case <-s.Proc.Exited():
		died = true
	default:
	}

	var maxRSS uint64
	maxFDs := 0
	for _, sm := range samples {
		maxRSS = max(maxRSS, sm.rss)
		maxFDs = max(maxFDs, sm.fds)
	}
	var byCode []string
	for k, v := range codes {
		byCode = append(byCode, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(byCode)
	fmt.Fprintf(stdout, "plumbline soak: %s of load (%d keep-alive clients) on the iris example, two R deployments, a change every %s\n",
		elapsed.Round(time.Second), cfg.clients, cfg.churnEvery)
	fmt.Fprintf(stdout, "machine: %d CPUs, load average %s at the end\n", runtime.NumCPU(), loadavg())
	fmt.Fprintf(stdout, "requests: %d (%.1f/s), failed: %d, shed with 429: %d [%s]\n", requests.Load(), float64(requests.Load())/elapsed.Seconds(), failures.Load(), shed.Load(), strings.Join(byCode, " "))
	fmt.Fprintf(stdout, "changes: %d (traffic, mirror, key regeneration, gc --dry-run), failed: %d\n", changes.Load(), changeFailures.Load())
	for _, e := range changeErrs {
		fmt.Fprintf(stdout, "  failed change: %s\n", e)
	}
	fmt.Fprintf(stdout, "server RSS: %s at start, %s at end (max %s)\n", mib(first.rss), mib(last.rss), mib(maxRSS))
	fmt.Fprintf(stdout, "server open fds: %d at start, %d at end (max %d)\n", first.fds, last.fds, maxFDs)
	fmt.Fprintf(stdout, "R instances: %d at start (%s), %d at end (%s)\n", first.instances, mib(first.instanceRSS), last.instances, mib(last.instanceRSS))
	switch {
	case died:
		return fmt.Errorf("the server exited during the soak:\n%s", s.Proc.LogTail(4000))
	case failures.Load() > 0 || changeFailures.Load() > 0:
		return fmt.Errorf("%d requests and %d changes failed", failures.Load(), changeFailures.Load())
	}
	return nil
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
