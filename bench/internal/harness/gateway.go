package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/plumbline/plumbline/bench/internal/load"
	"github.com/plumbline/plumbline/bench/internal/nginx"
	"github.com/plumbline/plumbline/bench/internal/proc"
	"github.com/plumbline/plumbline/bench/internal/serve"
)

// gatewayEndpoint is the endpoint of scenario 1 on both plumbline servers.
const gatewayEndpoint = "gwbench"

// scoreBody is the request body of the Go-backend scenarios.
var scoreBody = []byte(`{"data":[[5.1,3.5,1.4,0.2]]}`)

// genericDeployment renders a deployment that runs command through the
// generic environment extension.
func genericDeployment(name, endpoint string, command []string, maxConcurrent, instances int, vars map[string]string) string {
	cmd, _ := json.Marshal(command)
	var b strings.Builder
	fmt.Fprintf(&b, `name: %s
endpoint_name: %s
environment:
  plumbline:
    runtime: generic
    command: %s
  inference_config:
    liveness_route: {port: 8000, path: /live}
    readiness_route: {port: 8000, path: /ready}
    scoring_route: {port: 8000, path: /score}
request_settings:
  max_concurrent_requests_per_instance: %d
  request_timeout_ms: 10000
instance_type: Standard_DS3_v2
instance_count: %d
`, name, endpoint, cmd, maxConcurrent, instances)
	if len(vars) > 0 {
		b.WriteString("environment_variables:\n")
		for _, k := range sortedKeys(vars) {
			fmt.Fprintf(&b, "  %s: %q\n", k, vars[k])
		}
	}
	return b.String()
}

// createEndpoint creates a key-auth endpoint with the CLI and returns its
// primary key.
func (e *env) createEndpoint(ctx context.Context, s *serve.Server, name string) (string, error) {
	if _, err := s.CLI(ctx, "online-endpoint", "create", "--name", name, "--auth-mode", "key", "-o", "json"); err != nil {
		return "", err
	}
	return s.Key(ctx, name)
}

// createGeneric writes a generic deployment file and creates it with the
// CLI, which waits until it has succeeded.
func (e *env) createGeneric(ctx context.Context, s *serve.Server, endpoint, name string, args []string, maxConcurrent, instances int) error {
	doc := genericDeployment(name, endpoint, append([]string{e.backend, "--port", "{port}"}, args...), maxConcurrent, instances, nil)
	file, err := e.writeFile(fmt.Sprintf("yaml/%s-%s-%s.yml", s.Name, endpoint, name), doc)
	if err != nil {
		return err
	}
	_, err = s.CLI(ctx, "online-deployment", "create", "-f", file, "-o", "json")
	return err
}

// gateway is scenario 1 (and the serve/nginx half of scenario 6).
func (e *env) gateway(ctx context.Context) error {
	c := e.cfg
	// Two backends behind nginx, as plumbline's endpoint splits over two
	// deployments: each backend sees the same share of the load either way.
	directAddr, directProc, err := e.startBackend(ctx, "backend-direct")
	if err != nil {
		return err
	}
	secondAddr, secondProc, err := e.startBackend(ctx, "backend-nginx-2")
	if err != nil {
		return err
	}
	certFile, keyFile, nginxCAs, err := selfSigned(filepath.Join(e.tmp, "nginx-tls"))
	if err != nil {
		return err
	}
	upstreams := []string{directAddr, secondAddr}
	ng, err := nginx.Start(ctx, e.g, c.Nginx, e.tmp+"/nginx-gateway", []*nginx.Site{
		{Name: "go_backend", Upstreams: upstreams, Keepalive: 256},
		{Name: "go_backend_tls", Upstreams: upstreams, Keepalive: 256, TLSCert: certFile, TLSKey: keyFile},
	})
	if err != nil {
		return err
	}
	servers := map[string]*serve.Server{}
	if servers[vPlumblineHTTPS], err = e.serveHTTPS(ctx); err != nil {
		return err
	}
	if servers[vPlumblineHTTP], err = e.serveHTTP(ctx); err != nil {
		return err
	}
	// --log-level warn drops the access log's INFO lines, nothing else.
	if servers[vPlumblineNoLog], err = serve.Start(ctx, e.g, "plumbline-http-nolog", c.Plumbline, filepath.Join(e.tmp, "data-http-nolog"), true, "--log-level", "warn"); err != nil {
		return err
	}
	if servers[vPlumblineFast], err = serve.Start(ctx, e.g, "plumbline-http-h1loop", c.Plumbline, filepath.Join(e.tmp, "data-http-h1loop"), true, "--http1", "fast"); err != nil {
		return err
	}
	keys := map[string]string{}
	for v, s := range servers {
		key, err := e.createEndpoint(ctx, s, gatewayEndpoint)
		if err != nil {
			return err
		}
		keys[v] = key
		for _, d := range []string{"blue", "green"} {
			if err := e.createGeneric(ctx, s, gatewayEndpoint, d, nil, 1024, 1); err != nil {
				return err
			}
		}
		if _, err := s.CLI(ctx, "online-endpoint", "update", "--name", gatewayEndpoint, "--traffic", "blue=50 green=50", "-o", "json"); err != nil {
			return err
		}
	}
	// plumbline-https-h2 is the HTTPS server again, spoken to in HTTP/2.
	servers[vPlumblineH2] = servers[vPlumblineHTTPS]
	keys[vPlumblineH2] = keys[vPlumblineHTTPS]
	e.logf("gateway: direct %s, nginx %s and %s → %v, plumbline %s (HTTP), %s (HTTPS), %s (HTTP, no access log); endpoint %s, blue=50 green=50",
		directAddr, ng.URL("go_backend"), ng.URL("go_backend_tls"), upstreams, servers[vPlumblineHTTP].BaseURL(), servers[vPlumblineHTTPS].BaseURL(), servers[vPlumblineNoLog].BaseURL(), gatewayEndpoint)

	// Idle memory: after start-up and the deployments, before any load.
	settle := time.Second
	if c.Smoke {
		settle = 200 * time.Millisecond
	}
	time.Sleep(settle)
	mem := &e.res.Memory
	mem.ServeIdle, mem.ServeRun1 = map[string]proc.Mem{}, map[string]proc.Mem{}
	for _, v := range []string{vPlumblineHTTPS, vPlumblineHTTP} {
		m, _ := proc.ReadMem(servers[v].Proc.Pid())
		mem.ServeIdle[servers[v].Name] = m
	}
	ngPIDs := ng.PIDs()
	mem.NginxProcs = len(ngPIDs)
	for _, p := range ngPIDs {
		m, _ := proc.ReadMem(p)
		mem.NginxIdle += m.RSS
	}

	jsonHeader := map[string][]string{"Content-Type": {"application/json"}}
	targets := map[string]load.Target{
		vDirect:   {Method: "POST", URL: "http://" + directAddr + "/score", Body: scoreBody, Header: jsonHeader},
		vNginx:    {Method: "POST", URL: ng.URL("go_backend") + "/score", Body: scoreBody, Header: jsonHeader},
		vNginxTLS: {Method: "POST", URL: ng.URL("go_backend_tls") + "/score", Body: scoreBody, Header: jsonHeader},
	}
	opts := map[string]load.ClientOptions{
		vDirect:   {KeepAlive: true},
		vNginx:    {KeepAlive: true},
		vNginxTLS: {KeepAlive: true, RootCAs: nginxCAs, ServerName: "localhost"},
	}
	// The processes whose CPU each variant's proxy and backend use.
	nginxBackends := func() []int { return []int{directProc.Pid(), secondProc.Pid()} }
	proxyPIDs := map[string]func() []int{
		vDirect:   func() []int { return nil },
		vNginx:    ng.PIDs,
		vNginxTLS: ng.PIDs,
	}
	backendPIDs := map[string]func() []int{
		vDirect:   func() []int { return []int{directProc.Pid()} },
		vNginx:    nginxBackends,
		vNginxTLS: nginxBackends,
	}
	for v, s := range servers {
		targets[v] = scoreTarget(s, gatewayEndpoint, keys[v], scoreBody)
		opts[v] = s.ClientOptions(true)
		proxyPIDs[v] = func() []int { return []int{s.Proc.Pid()} }
		backendPIDs[v] = func() []int {
			var out []int
			for _, in := range s.Instances(gatewayEndpoint, "") {
				out = append(out, in.PID)
			}
			return out
		}
	}
	h2 := opts[vPlumblineH2]
	h2.HTTP2 = true
	opts[vPlumblineH2] = h2

	variants := []string{vDirect, vNginx, vNginxTLS, vPlumblineHTTP, vPlumblineHTTPS, vPlumblineH2, vPlumblineNoLog, vPlumblineFast}
	r := &GatewayResult{
		Variants: variants,
		Desc: map[string]string{
			vDirect: "the Go backend itself, plain HTTP",
			vNginx: fmt.Sprintf("nginx (worker_processes auto = %d, upstream keepalive 256, HTTP/1.1 upstream, access_log off) → two Go backends, round robin, plain HTTP",
				runtime.NumCPU()),
			vNginxTLS: "the same nginx over HTTPS (TLS 1.3, HTTP/1.1; a self-signed ECDSA P-256 certificate, the key type of plumbline's local CA)",
			vPlumblineHTTP: "`plumbline serve --insecure-http`: key auth, a 50/50 split over two generic deployments (max_concurrent_requests_per_instance 1024) → " +
				"their own Go backends, access log on (the default); plain HTTP like nginx",
			vPlumblineHTTPS: "`plumbline serve` (TLS, the default): the same endpoint over HTTPS (TLS 1.3, HTTP/1.1) to the client, plain HTTP to the instances",
			vPlumblineH2:    "the same HTTPS server spoken to in HTTP/2 (h2, one stream in flight per connection)",
			vPlumblineNoLog: "diagnostic: plumbline-http with `--log-level warn`, which drops the one access-log line per request; not a target",
			vPlumblineFast:  "plumbline-http with `--http1 fast`: scoring requests served by the gateway's own HTTP/1.1 loop instead of net/http's server (docs/gateway.md); not a target yet",
		},
		Conns: c.Conns, Rate: c.GatewayRate,
		Closed: map[string][]load.Stats{}, Fixed: map[string][]load.Stats{},
		ProxyCPU: map[string][]time.Duration{}, BackendCPU: map[string][]time.Duration{}, GenCPU: map[string][]time.Duration{},
		FixedProxyCPU: map[string][]time.Duration{}, FixedBackendCPU: map[string][]time.Duration{},
		Generator: map[string]string{},
	}
	for _, v := range variants {
		r.Generator[v] = e.closedGenerator(opts[v], c.Conns)
	}
	e.res.Gateway = r

	// Warm up every path (connections, TLS sessions, the servers' pools),
	// closed loop then at the fixed rate; the fixed-rate runs keep the
	// warmed connections, as a long-lived client would.
	warm := 500 * time.Millisecond
	if c.Smoke {
		warm = 200 * time.Millisecond
	}
	fixedTr := map[string]*http.Transport{}
	for _, v := range variants {
		if err := warmUp(ctx, v, load.ClosedLoop{Targets: []load.Target{targets[v]}, Conns: 8, Client: opts[v]}, warm); err != nil {
			return err
		}
		// A pooled client, as most HTTP client libraries are: at most Conns
		// connections. Without a cap, a stall of the shared machine turns
		// into thousands of new connections (TLS handshakes over HTTPS)
		// that keep it stalled.
		fo := opts[v]
		fo.MaxConns = c.Conns
		fixedTr[v] = load.NewTransport(fo)
		defer fixedTr[v].CloseIdleConnections()
		load.ConstantRate{Targets: []load.Target{targets[v]}, Rate: c.GatewayRate, Duration: warm, Transport: fixedTr[v]}.Run(ctx)
	}

	ngPeak := proc.StartPeak(100*time.Millisecond, ng.PIDs)
	defer ngPeak.Stop()
	for rep := range c.Repeats {
		for _, v := range e.shuffled(variants) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p0, b0, g0 := proc.CPU(proxyPIDs[v]()...), proc.CPU(backendPIDs[v]()...), proc.CPU(os.Getpid())
			st, err := e.closed(ctx, targets[v], opts[v], c.Conns, c.GatewayRun)
			if err != nil {
				return fmt.Errorf("%s: %w", v, err)
			}
			p1, b1, g1 := proc.CPU(proxyPIDs[v]()...), proc.CPU(backendPIDs[v]()...), proc.CPU(os.Getpid())
			n := time.Duration(max(1, st.Requests))
			gen := g1 - g0 // the Go generator runs in this process
			if st.GenCPU > 0 {
				gen = st.GenCPU // wrk's or h2load's own
			}
			r.ProxyCPU[v] = append(r.ProxyCPU[v], (p1-p0)/n)
			r.BackendCPU[v] = append(r.BackendCPU[v], (b1-b0)/n)
			r.GenCPU[v] = append(r.GenCPU[v], gen/n)
			r.Closed[v] = append(r.Closed[v], st)
			e.logf("gateway closed-loop rep %d %-20s %8.0f req/s  p50 %-9s p99 %-9s %s", rep+1, v, st.RPS, fmtDur(st.P50), fmtDur(st.P99), st.CodesString())
		}
	}
	for rep := range c.Repeats {
		for _, v := range e.shuffled(variants) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p0, b0 := proc.CPU(proxyPIDs[v]()...), proc.CPU(backendPIDs[v]()...)
			st := load.ConstantRate{Targets: []load.Target{targets[v]}, Rate: c.GatewayRate, Duration: c.GatewayRun, Transport: fixedTr[v]}.Run(ctx)
			p1, b1 := proc.CPU(proxyPIDs[v]()...), proc.CPU(backendPIDs[v]()...)
			n := time.Duration(max(1, st.Requests))
			r.FixedProxyCPU[v] = append(r.FixedProxyCPU[v], (p1-p0)/n)
			r.FixedBackendCPU[v] = append(r.FixedBackendCPU[v], (b1-b0)/n)
			r.Fixed[v] = append(r.Fixed[v], st)
			e.logf("gateway %d/s rep %d %-20s p50 %-9s p99 %-9s achieved %.0f/s %s", c.GatewayRate, rep+1, v, fmtDur(st.P50), fmtDur(st.P99), st.Throughput(), st.CodesString())
		}
	}
	mem.NginxPeak = ngPeak.Stop()
	for _, v := range []string{vPlumblineHTTPS, vPlumblineHTTP} {
		m, _ := proc.ReadMem(servers[v].Proc.Pid())
		mem.ServeRun1[servers[v].Name] = m
	}
	// Sanity: every variant answered.
	for _, v := range variants {
		if slices.ContainsFunc(r.Closed[v], func(s load.Stats) bool { return s.OK == 0 }) {
			return fmt.Errorf("%s: a closed-loop run had no successful request", v)
		}
	}

	// The handshake storm: a new TLS connection for every request.
	return e.handshakeStorm(ctx, r, map[string]load.Target{vNginxTLS: targets[vNginxTLS], vPlumblineHTTPS: targets[vPlumblineHTTPS]},
		map[string]load.ClientOptions{vNginxTLS: opts[vNginxTLS], vPlumblineHTTPS: opts[vPlumblineHTTPS]}, proxyPIDs)
}

// handshakeStorm runs the closed loop with Connection: close against nginx
// and plumbline over TLS: every request pays a full handshake (neither wrk
// nor the Go generator resumes TLS sessions).
func (e *env) handshakeStorm(ctx context.Context, g *GatewayResult, targets map[string]load.Target, opts map[string]load.ClientOptions, proxyPIDs map[string]func() []int) error {
	c := e.cfg
	hs := &HandshakeResult{Variants: []string{vNginxTLS, vPlumblineHTTPS}, Conns: c.Conns,
		Closed: map[string][]load.Stats{}, ProxyCPU: map[string][]time.Duration{}}
	g.Handshake = hs
	for rep := range c.Repeats {
		for _, v := range e.shuffled(hs.Variants) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t := targets[v]
			t.Header = t.Header.Clone()
			t.Header.Set("Connection", "close")
			o := opts[v]
			o.KeepAlive = false
			p0 := proc.CPU(proxyPIDs[v]()...)
			st, err := e.closed(ctx, t, o, c.Conns, c.GatewayRun)
			if err != nil {
				return fmt.Errorf("handshake storm, %s: %w", v, err)
			}
			p1 := proc.CPU(proxyPIDs[v]()...)
			hs.ProxyCPU[v] = append(hs.ProxyCPU[v], (p1-p0)/time.Duration(max(1, st.Requests)))
			hs.Closed[v] = append(hs.Closed[v], st)
			e.logf("handshake storm rep %d %-16s %8.0f handshakes/s  %s", rep+1, v, st.RPS, st.CodesString())
		}
	}
	for _, v := range hs.Variants {
		if slices.ContainsFunc(hs.Closed[v], func(s load.Stats) bool { return s.OK == 0 }) {
			return fmt.Errorf("handshake storm, %s: a run had no successful request", v)
		}
	}
	return nil
}

func wrkThreads() int { return max(1, min(runtime.NumCPU(), 4)) }

// closedGenerator names the closed-loop generator a variant gets.
func (e *env) closedGenerator(o load.ClientOptions, conns int) string {
	switch {
	case o.HTTP2 && e.h2load != "":
		return fmt.Sprintf("h2load -t%d -c%d -m1", wrkThreads(), conns)
	case o.HTTP2:
		return fmt.Sprintf("Go closed loop over HTTP/2, %d connections", conns)
	case e.wrk != "":
		return fmt.Sprintf("wrk -t%d -c%d", wrkThreads(), conns)
	default:
		return fmt.Sprintf("Go closed loop, %d connections", conns)
	}
}

// closed runs one closed-loop measurement with wrk (h2load for HTTP/2) or
// the Go generator.
func (e *env) closed(ctx context.Context, t load.Target, opts load.ClientOptions, conns int, d time.Duration) (load.Stats, error) {
	switch {
	case opts.HTTP2 && e.h2load != "":
		return load.H2Load{Bin: e.h2load, Target: t, Conns: conns, Threads: wrkThreads(), Duration: d, ScriptDir: e.tmp}.Run(ctx)
	case !opts.HTTP2 && e.wrk != "":
		return load.Wrk{Bin: e.wrk, Target: t, Conns: conns, Threads: wrkThreads(), Duration: d, ScriptDir: e.tmp}.Run(ctx)
	}
	return load.ClosedLoop{Targets: []load.Target{t}, Conns: conns, Duration: d, Client: opts}.Run(ctx), nil
}
