package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/bench/internal/proc"
	"github.com/plumbline/plumbline/internal/rworker"
)

// LeanStages is where one lean request's time goes, for one model: the
// lean runtime's supervisor (`plumbline rworker`, as the process driver
// runs it) with one worker, started with --timing and --rprof, under one
// closed-loop keep-alive client. Every answer's Server-Timing gives each
// stage's duration; the worker's Rprof samples (CPU time, 0.5 ms) give each
// stage's share of R's work.
type LeanStages struct {
	Requests   int
	ClientP50  time.Duration
	ClientMean time.Duration
	// Stages follow rworker.Stages: p50 and mean of each, in ms.
	Stages []StageFigure
	// Rprof holds the worker's samples by stage, largest first.
	Rprof        []RprofShare
	RprofSamples int
}

// StageFigure is one Server-Timing stage over the run.
type StageFigure struct {
	Name, Desc string
	P50, Mean  float64 // ms
}

// RprofShare is the worker's Rprof samples taken in one stage.
type RprofShare struct {
	Stage   string
	Samples int
}

// leanStages measures m's stages.
func (e *env) leanStages(ctx context.Context, m leanModel) (*LeanStages, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.tmp, "stages-rworker-"+m.name)
	prof := filepath.Join(e.tmp, "stages-rprof-"+m.name)
	code := filepath.Join(m.example, "src")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(e.cfg.Plumbline, rworker.Command, "--listen", addr, "--dir", dir, "--rscript", e.cfg.Rscript,
		"--liveness-path", "/live", "--readiness-path", "/ready", "--timing", "--rprof", prof)
	cmd.Dir = code
	cmd.Env = append(os.Environ(), "AML_APP_ROOT="+code, "AZUREML_ENTRY_SCRIPT=plumber.R", "AZUREML_MODEL_DIR="+m.modelDir)
	p, err := e.g.Start("rworker-stages-"+m.name, cmd, proc.Options{Grace: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	if err := waitReady(ctx, p, "http://"+addr+"/ready", 2*time.Minute); err != nil {
		return nil, err
	}

	client := &http.Client{Timeout: 30 * time.Second}
	one := func() (time.Duration, string, error) {
		t0 := time.Now()
		res, err := client.Post("http://"+addr+"/score", "application/json", bytes.NewReader(m.body))
		if err != nil {
			return 0, "", err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return 0, "", fmt.Errorf("POST /score answered %s", res.Status)
		}
		return time.Since(t0), res.Header.Get("Server-Timing"), nil
	}
	// Warm-up: R loads lazily and compiles what the first requests call.
	for range 50 {
		if _, _, err := one(); err != nil {
			return nil, err
		}
	}
	ls := &LeanStages{}
	durs := map[string][]float64{}
	var client_ []time.Duration
	var total time.Duration
	end := time.Now().Add(e.cfg.RRun)
	for time.Now().Before(end) {
		d, st, err := one()
		if err != nil {
			return nil, err
		}
		client_ = append(client_, d)
		total += d
		for name, ms := range parseServerTiming(st) {
			durs[name] = append(durs[name], ms)
		}
	}
	ls.Requests = len(client_)
	slices.Sort(client_)
	ls.ClientP50 = client_[len(client_)/2]
	ls.ClientMean = total / time.Duration(len(client_))
	for _, st := range rworker.Stages {
		v := durs[st.Name]
		if len(v) != ls.Requests {
			return nil, fmt.Errorf("Server-Timing had %s in %d of %d answers", st.Name, len(v), ls.Requests)
		}
		sort.Float64s(v)
		sum := 0.0
		for _, x := range v {
			sum += x
		}
		ls.Stages = append(ls.Stages, StageFigure{Name: st.Name, Desc: st.Desc, P50: v[len(v)/2], Mean: sum / float64(len(v))})
	}

	// The supervisor alone gets SIGTERM: it closes the workers' pipes, and
	// each worker ends its Rprof file before it exits.
	_ = syscall.Kill(p.Pid(), syscall.SIGTERM)
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
	}
	files, _ := filepath.Glob(prof + ".w*")
	if len(files) == 0 {
		return nil, fmt.Errorf("the worker left no Rprof file (%s.w*)", prof)
	}
	f, err := os.Open(files[0])
	if err != nil {
		return nil, err
	}
	defer f.Close()
	counts, n, err := classifyRprof(f)
	if err != nil {
		return nil, err
	}
	ls.RprofSamples = n
	for stage, c := range counts {
		ls.Rprof = append(ls.Rprof, RprofShare{stage, c})
	}
	sort.Slice(ls.Rprof, func(i, j int) bool {
		if ls.Rprof[i].Samples != ls.Rprof[j].Samples {
			return ls.Rprof[i].Samples > ls.Rprof[j].Samples
		}
		return ls.Rprof[i].Stage < ls.Rprof[j].Stage
	})
	e.logf("lean %s stages: %d requests, client p50 %s; %d Rprof samples", m.name, ls.Requests, fmtDur(ls.ClientP50), n)
	return ls, nil
}

// waitReady polls url until it answers 200, failing when p exits first or
// after timeout.
func waitReady(ctx context.Context, p *proc.Proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.Exited():
			return proc.ExitError(p)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %s: %v\n%s", url, timeout, err, p.LogTail(2000))
		}
	}
}

// parseServerTiming reads "name;dur=ms, …".
func parseServerTiming(v string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range strings.Split(v, ",") {
		name, dur, ok := strings.Cut(strings.TrimSpace(m), ";dur=")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(dur, 64); err == nil {
			out[name] = f
		}
	}
	return out
}

// Rprof stages: the Server-Timing stage each sample belongs to, from the
// functions on its stack (lean.R's and plumber's names).
const (
	rpHandler = "r-handler: the endpoint's function"
	rpParse   = "r-parse: plumber's body parser and the arguments"
	rpSer     = "r-serialize: the serializer, plumber's response"
	rpRoute   = "r-route: plumber's routing steps (filters, response object, error handling)"
	rpRequest = "r-request: the request environment"
	rpEncode  = "r-encode: the response frame"
	rpRead    = "r-read: reading and splitting the request frame"
	rpWrite   = "from-r: writing the response frame"
	rpOther   = "the worker's loop, other"
)

// classifyRprof counts an Rprof file's samples by stage. Each line after
// the header is one sample's stack, innermost function first, names quoted.
func classifyRprof(r io.Reader) (map[string]int, int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	counts := map[string]int{}
	n := 0
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			if strings.Contains(line, "sample.interval=") {
				continue
			}
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		var stack []string
		for _, f := range strings.Fields(line) {
			stack = append(stack, strings.Trim(f, `"`))
		}
		counts[rprofStage(stack)]++
		n++
	}
	return counts, n, sc.Err()
}

// rprofStage names the stage of one stack (innermost first).
func rprofStage(stack []string) string {
	has := func(names ...string) bool {
		for _, n := range names {
			if slices.Contains(stack, n) {
				return true
			}
		}
		return false
	}
	switch {
	case has("parse_request_body", "req_body_parser", "req_body_args", "getRelevantArgs"):
		return rpParse
	case has("handle"):
		// The endpoint's function is what handle() calls through do.call
		// (or h$exec, with endpoint hooks).
		if i := slices.Index(stack, "handle"); slices.Contains(stack[:i], "do.call") || slices.Contains(stack[:i], "h$exec") {
			return rpHandler
		}
		return rpRoute
	case has("ser", "res$toResponse"):
		return rpSer
	case has("call_router", "route_request", "route", "new_response"):
		return rpRoute
	case has("make_req"):
		return rpRequest
	case has("encode_response", "frame_of"):
		return rpEncode
	case has("read_full", "strsplit", "tempdir"):
		return rpRead
	case has("writeBin", "flush"):
		return rpWrite
	}
	return rpOther
}
