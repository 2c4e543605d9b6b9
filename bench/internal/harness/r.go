package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/nginx"
	"github.com/plumbline/plumbline/bench/internal/proc"
	"github.com/plumbline/plumbline/bench/internal/rscript"
	"github.com/plumbline/plumbline/bench/internal/serve"
)

// The iris example, as users deploy it.
const (
	irisExample = "examples/r-iris"
	irisModel   = "iris-crate"
)

// irisEnv is the trained example: the folder registered as the model (its
// crate.bin is at <ModelDir>/models/crate.bin, as plumber.R expects) and a
// request body.
type irisEnv struct {
	Example  string // absolute path of examples/r-iris
	ModelDir string // AZUREML_MODEL_DIR for the harness's own plumbers
	Models   string // <ModelDir>/models: what `model create --path` registers
	Body     []byte
}

// iris trains the example's crate into the temporary folder (the
// repository's models/ is left alone) and registers it on the TLS server.
func (e *env) iris(ctx context.Context) (*irisEnv, error) {
	ex := filepath.Join(e.cfg.RepoRoot, irisExample)
	ie := &irisEnv{Example: ex, ModelDir: filepath.Join(e.tmp, "iris")}
	ie.Models = filepath.Join(ie.ModelDir, "models")
	if _, err := os.Stat(filepath.Join(ie.Models, "crate.bin")); err == nil {
		return ie, e.irisBody(ie)
	}
	t0 := time.Now()
	if err := rscript.Train(ctx, e.cfg.Rscript, filepath.Join(ex, "train.R"), ie.Models); err != nil {
		return nil, err
	}
	e.logf("trained the iris crate in %.1fs", time.Since(t0).Seconds())
	if err := e.irisBody(ie); err != nil {
		return nil, err
	}
	s, err := e.serveHTTPS(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.CLI(ctx, "model", "create", "--name", irisModel, "--version", "1", "--path", ie.Models, "-o", "json"); err != nil {
		return nil, err
	}
	return ie, nil
}

func (e *env) irisBody(ie *irisEnv) error {
	b, err := os.ReadFile(filepath.Join(ie.Example, "sample_request.json"))
	ie.Body = b
	return err
}

// createIris creates a deployment from the example's deployment.yml, as is,
// on another endpoint and name.
func createIris(ctx context.Context, s *serve.Server, ie *irisEnv, endpoint, name string, instances int, extra ...string) (string, error) {
	args := append([]string{"online-deployment", "create", "-f", filepath.Join(ie.Example, "deployment.yml"),
		"--name", name, "--endpoint-name", endpoint, "--set", "instance_count=" + strconv.Itoa(instances), "-o", "json"}, extra...)
	return s.CLI(ctx, args...)
}

// rEndpoint is scenario 2's endpoint with n instances.
func rEndpoint(n int) string { return fmt.Sprintf("rbench%d", n) }

// rScenario is scenario 2 (and the R half of scenario 6).
func (e *env) rScenario(ctx context.Context) error {
	c := e.cfg
	ie, err := e.iris(ctx)
	if err != nil {
		return err
	}
	r := &RResult{
		Conc:     map[int]int{1: 1, 2: 2},
		Variants: []string{rNaive, rClose, rNginx, rNginxKA, rPlumbline},
		Desc: map[string]string{
			rNaive:     "Go client, one keep-alive connection per worker, no TCP_QUICKACK: meets httpuv's Nagle × delayed-ACK stall",
			rClose:     "Go client, Connection: close (a TCP handshake per request, no stall)",
			rNginx:     "keep-alive client → nginx, default proxy_pass (HTTP/1.0, a new upstream connection per request)",
			rNginxKA:   "keep-alive client → nginx with upstream keepalive 16, HTTP/1.1 (meets the same stall)",
			rPlumbline: "keep-alive client → plumbline serve over HTTPS (key auth) → its instances on plumber's own server (`plumbline.r_runtime: plumber`; keep-alive + TCP_QUICKACK)",
		},
		Runs: map[int]map[string][]load.Stats{1: {}, 2: {}},
	}
	e.res.R = r

	// 1. The in-R compute limit.
	lim, err := rscript.ComputeLimit(ctx, c.Rscript, filepath.Join(ie.Example, "src", "plumber.R"), ie.ModelDir, "/score", string(ie.Body), c.RRun)
	if err != nil {
		r.LimitErr = err.Error()
		return err
	}
	r.Limit = lim
	e.logf("in-R compute limit: %.0f/s (%s per request, %d iterations)", lim.RPS, lim.PerRequest, lim.Iterations)

	// 2. The harness's own plumber processes, for direct and nginx.
	var plumbers []*rscript.Plumber
	for i := 1; i <= 2; i++ {
		t0 := time.Now()
		p, err := rscript.StartPlumber(ctx, e.g, fmt.Sprintf("plumber-%d", i), c.Rscript, filepath.Join(ie.Example, "src"), "plumber.R", ie.ModelDir, "/ready")
		if err != nil {
			return err
		}
		if i == 1 {
			r.PlumberBoot = time.Since(t0)
		}
		plumbers = append(plumbers, p)
	}
	ng, err := nginx.Start(ctx, e.g, c.Nginx, e.tmp+"/nginx-r", []*nginx.Site{
		{Name: "plumber1", Upstreams: []string{plumbers[0].Addr}},
		{Name: "plumber1_ka", Upstreams: []string{plumbers[0].Addr}, Keepalive: 16},
		{Name: "plumber2", Upstreams: []string{plumbers[0].Addr, plumbers[1].Addr}},
		{Name: "plumber2_ka", Upstreams: []string{plumbers[0].Addr, plumbers[1].Addr}, Keepalive: 16},
	})
	if err != nil {
		return err
	}

	// 3. plumbline with 1 and 2 instances of the example deployment.
	s, err := e.serveHTTPS(ctx)
	if err != nil {
		return err
	}
	keys := map[int]string{}
	for _, n := range []int{1, 2} {
		ep := rEndpoint(n)
		if keys[n], err = e.createEndpoint(ctx, s, ep); err != nil {
			return err
		}
		// plumber's own server: this scenario compares plumbline's hop with
		// nginx's in front of the same server (scenario 7 has the lean runtime).
		if _, err := createIris(ctx, s, ie, ep, "iris", n, "--all-traffic", "--set", "plumbline.r_runtime=plumber"); err != nil {
			return err
		}
	}

	json := map[string][]string{"Content-Type": {"application/json"}}
	type variant struct {
		targets []load.Target
		opts    load.ClientOptions
	}
	variants := map[int]map[string]variant{}
	for _, n := range []int{1, 2} {
		direct := make([]load.Target, n)
		for i := range n {
			direct[i] = load.Target{Method: "POST", URL: "http://" + plumbers[i].Addr + "/score", Body: ie.Body, Header: json}
		}
		site := fmt.Sprintf("plumber%d", n)
		variants[n] = map[string]variant{
			rNaive:     {direct, load.ClientOptions{KeepAlive: true}},
			rClose:     {direct, load.ClientOptions{KeepAlive: false}},
			rNginx:     {[]load.Target{{Method: "POST", URL: ng.URL(site) + "/score", Body: ie.Body, Header: json}}, load.ClientOptions{KeepAlive: true}},
			rNginxKA:   {[]load.Target{{Method: "POST", URL: ng.URL(site+"_ka") + "/score", Body: ie.Body, Header: json}}, load.ClientOptions{KeepAlive: true}},
			rPlumbline: {[]load.Target{scoreTarget(s, rEndpoint(n), keys[n], ie.Body)}, s.ClientOptions(true)},
		}
	}
	type job struct {
		n int
		v string
	}
	var jobs []job
	for _, n := range []int{1, 2} {
		for _, v := range r.Variants {
			jobs = append(jobs, job{n, v})
			// Warm up: R compiles on first use; connections open.
			vv := variants[n][v]
			cl := load.ClosedLoop{Targets: vv.targets, Conns: n, Client: vv.opts}
			if err := warmUp(ctx, fmt.Sprintf("%s with %d instance(s)", v, n), cl, 300*time.Millisecond); err != nil {
				return err
			}
		}
	}
	for rep := range c.Repeats {
		order := make([]job, len(jobs))
		copy(order, jobs)
		e.rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, j := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			vv := variants[j.n][j.v]
			st := load.ClosedLoop{Targets: vv.targets, Conns: r.Conc[j.n], Duration: c.RRun, Client: vv.opts}.Run(ctx)
			r.Runs[j.n][j.v] = append(r.Runs[j.n][j.v], st)
			e.logf("R rep %d, %d instance(s), %-46s %7.1f req/s p50 %-9s p99 %-9s %s", rep+1, j.n, j.v, st.RPS, st.P50.Round(time.Microsecond), st.P99.Round(time.Microsecond), st.CodesString())
		}
	}

	// Memory of every R process.
	for i, p := range plumbers {
		m, _ := proc.ReadMem(p.Proc.Pid())
		e.res.Memory.R = append(e.res.Memory.R, NamedMem{Name: fmt.Sprintf("plumber started by the harness #%d", i+1), Mem: m})
	}
	for _, n := range []int{1, 2} {
		for _, in := range s.Instances(rEndpoint(n), "") {
			m, _ := proc.ReadMem(in.PID)
			e.res.Memory.R = append(e.res.Memory.R, NamedMem{Name: "plumbline instance " + in.ID, Mem: m})
		}
	}
	return nil
}
