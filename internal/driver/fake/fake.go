// Package fake is a configurable in-memory driver for fast reconciler,
// gateway and API tests, in the spirit of Nomad's drivers/mock: instead of
// mocking calls, a test tells the fake how each instance behaves (fail to
// start, start slowly, crash after a while with an exit code, stay unready,
// ignore SIGTERM) and then drives the real code against it.
//
// Every instance serves HTTP like a real scoring server: by default on a
// real loopback port (Status.Addr), so probes and the gateway's proxy reach
// it over TCP; its liveness and readiness routes answer 200 or 503 from
// flags the test flips (SetLive, SetReady), and its scoring route follows
// the drivertest echo contract unless Behavior.Score replaces it. For tests
// inside a testing/synctest bubble, where real network I/O must not be
// waited on, Options.NoListen gives instances no socket, and Transport
// reaches them in memory.
//
// The fake passes the conformance suite in drivertest, so what reconciler
// tests learn from it holds for the process driver.
//
// This package must not import the store, the registry, the gateway, the
// reconciler or the API server.
package fake

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
)

var _ driver.Driver = (*Driver)(nil)

// Behavior says how the fake plays an instance. The zero value is a
// well-behaved server that starts at once, is live and ready, and runs
// until stopped.
type Behavior struct {
	// StartErr, when not nil, is what Start returns (after StartDelay), and
	// no instance is created. Use a *driver.StartError for a failure the
	// reconciler must treat as terminal.
	StartErr error
	// StartDelay makes Start block this long, or until its ctx ends.
	StartDelay time.Duration
	// CrashAfter, when positive, makes the instance exit on its own this
	// long after it started, with ExitCode.
	CrashAfter time.Duration
	// ExitCode is the exit code of a crash (CrashAfter or Crash).
	ExitCode int
	// NotReady starts the instance with its readiness route answering 503,
	// until SetReady(id, true).
	NotReady bool
	// IgnoreTerm makes Stop wait its full grace period before the instance
	// ends, like a server that ignores SIGTERM and must be killed.
	IgnoreTerm bool
	// LivenessPath, ReadinessPath and ScoringPath are the instance's routes.
	// Zero: /live, /ready and /score.
	LivenessPath, ReadinessPath, ScoringPath string
	// Score answers the scoring route. Zero: the drivertest echo contract
	// (POST {"env": [names], "log": "line"}: the line goes to the instance
	// log, the answer maps each name to its value in the instance's
	// environment).
	Score http.Handler
}

// Options configures a fake driver. The zero value serves every instance on
// a real loopback port.
type Options struct {
	// NoListen gives instances no socket: Status.Addr is a unique
	// "fake.invalid:<port>" that only Transport reaches. For synctest.
	NoListen bool
}

// Call is one Start or Stop the fake received, in order.
type Call struct {
	Op string // "start" or "stop"
	ID string
	// Spec is what a start was given (zero for a stop).
	Spec driver.InstanceSpec
}

// Driver is the fake. Create it with New; Close it at the end of the test
// (t.Cleanup(d.Close)).
type Driver struct {
	opts Options

	// mu guards the fields below.
	mu        sync.Mutex
	behaviors map[string]Behavior
	instances map[string]*instance // nil value: ID reserved while Start waits
	// leftovers are instances a simulated server restart (Restart) left
	// running and not yet re-adopted by Recover.
	leftovers map[string]*instance
	calls     []Call
	nextPort  int // for NoListen addresses
}

// New returns an empty fake driver.
func New(opts Options) *Driver {
	return &Driver{
		opts:      opts,
		behaviors: map[string]Behavior{},
		instances: map[string]*instance{},
		leftovers: map[string]*instance{},
		nextPort:  20000,
	}
}

// SetBehavior sets how instances started from now on behave. key is an
// instance ID ("iris.blue.blue-0"), a deployment ("iris.blue", that is
// endpoint + "." + deployment) or "" for every instance; the most specific
// match wins.
func (d *Driver) SetBehavior(key string, b Behavior) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.behaviors[key] = b
}

func (d *Driver) behavior(spec driver.InstanceSpec) Behavior {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range []string{spec.ID, spec.Endpoint + "." + spec.Deployment, ""} {
		if b, ok := d.behaviors[k]; ok {
			return b
		}
	}
	return Behavior{}
}

// Calls returns the Starts and Stops received so far, in order.
func (d *Driver) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

// instance is one fake server.
type instance struct {
	spec    driver.InstanceSpec
	b       Behavior
	env     map[string]string
	addr    string
	handler http.Handler
	srv     *http.Server // nil with NoListen
	log     logBuffer
	live    atomic.Bool
	ready   atomic.Bool
	// removed is closed when Stop forgets the instance; it ends followers.
	removed chan struct{}

	// mu guards status and crash.
	mu     sync.Mutex
	status driver.Status
	crash  *time.Timer
}

// Name is "fake".
func (d *Driver) Name() string { return "fake" }

// Start creates an instance that behaves as SetBehavior said.
func (d *Driver) Start(ctx context.Context, spec driver.InstanceSpec) (driver.Status, error) {
	b := d.behavior(spec)
	d.mu.Lock()
	d.calls = append(d.calls, Call{Op: "start", ID: spec.ID, Spec: spec})
	if _, ok := d.instances[spec.ID]; ok {
		d.mu.Unlock()
		return driver.Status{}, fmt.Errorf("start instance %s: %w", spec.ID, driver.ErrExists)
	}
	d.instances[spec.ID] = nil
	d.mu.Unlock()

	in, err := d.start(ctx, spec, b)

	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		delete(d.instances, spec.ID)
		return driver.Status{}, err
	}
	d.instances[spec.ID] = in
	return in.snapshot(), nil
}

func (d *Driver) start(ctx context.Context, spec driver.InstanceSpec, b Behavior) (*instance, error) {
	if b.StartDelay > 0 {
		t := time.NewTimer(b.StartDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("start instance %s: %w", spec.ID, ctx.Err())
		case <-t.C:
		}
	}
	if b.StartErr != nil {
		return nil, b.StartErr
	}
	in := &instance{spec: spec, b: b, removed: make(chan struct{})}
	in.live.Store(true)
	in.ready.Store(!b.NotReady)

	var ln net.Listener
	port := 0
	if d.opts.NoListen {
		d.mu.Lock()
		d.nextPort++
		port = d.nextPort
		d.mu.Unlock()
		in.addr = net.JoinHostPort("fake.invalid", strconv.Itoa(port))
	} else {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
		}
		in.addr = ln.Addr().String()
		port = ln.Addr().(*net.TCPAddr).Port
	}
	in.env = contractEnv(spec, port)
	in.handler = in.routes()
	in.status = driver.Status{ID: spec.ID, State: driver.StateRunning, Addr: in.addr, Template: spec.Template, StartedAt: time.Now()}
	in.log.append(fmt.Sprintf("fake: instance %s serving on %s", spec.ID, in.addr))
	if ln != nil {
		in.srv = &http.Server{Handler: in.handler, ReadHeaderTimeout: 10 * time.Second}
		go in.srv.Serve(ln)
	}
	if b.CrashAfter > 0 {
		in.mu.Lock()
		in.crash = time.AfterFunc(b.CrashAfter, func() {
			in.exit(b.ExitCode, fmt.Sprintf("exited with code %d", b.ExitCode))
		})
		in.mu.Unlock()
	}
	return in, nil
}

// contractEnv is the environment a real driver would give the server: the
// container contract, then the user's variables, which win.
func contractEnv(spec driver.InstanceSpec, port int) map[string]string {
	env := map[string]string{"PORT": strconv.Itoa(port)}
	if spec.ModelDir != "" {
		env["AZUREML_MODEL_DIR"] = spec.ModelDir
	}
	if spec.CodeDir != "" {
		env["AML_APP_ROOT"] = spec.CodeDir
	}
	if spec.EntryScript != "" {
		env["AZUREML_ENTRY_SCRIPT"] = spec.EntryScript
	}
	maps.Copy(env, spec.Env)
	return env
}

// routes serves the liveness, readiness and scoring routes.
func (in *instance) routes() http.Handler {
	live := cmp.Or(in.b.LivenessPath, "/live")
	ready := cmp.Or(in.b.ReadinessPath, "/ready")
	score := cmp.Or(in.b.ScoringPath, "/score")
	scorer := in.b.Score
	if scorer == nil {
		scorer = http.HandlerFunc(in.echo)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case live:
			if !in.live.Load() {
				http.Error(w, "not live", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "alive")
		case ready:
			if !in.live.Load() || !in.ready.Load() {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ready")
		case score:
			scorer.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// echo is the drivertest scoring contract.
func (in *instance) echo(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Env []string `json:"env"`
		Log string   `json:"log"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.Log != "" {
		in.log.append(req.Log)
	}
	out := map[string]string{}
	for _, k := range req.Env {
		out[k] = in.env[k]
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// exit ends the instance's server as if its process had exited; it is a
// no-op when the instance already exited.
func (in *instance) exit(code int, msg string) {
	in.mu.Lock()
	if in.status.State == driver.StateExited {
		in.mu.Unlock()
		return
	}
	in.status.State = driver.StateExited
	in.status.ExitCode = code
	in.status.ExitedAt = time.Now()
	in.status.Message = msg
	if in.crash != nil {
		in.crash.Stop()
	}
	in.mu.Unlock()
	in.live.Store(false)
	if in.srv != nil {
		in.srv.Close()
	}
	in.log.append("fake: " + msg)
}

func (in *instance) snapshot() driver.Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.status
}

func (in *instance) exited() bool { return in.snapshot().State == driver.StateExited }

// lookup returns the instance or an error wrapping driver.ErrNotFound.
func (d *Driver) lookup(op, id string) (*instance, error) {
	d.mu.Lock()
	in := d.instances[id]
	d.mu.Unlock()
	if in == nil {
		return nil, fmt.Errorf("%s instance %s: %w", op, id, driver.ErrNotFound)
	}
	return in, nil
}

// Stop ends the instance at once or, with Behavior.IgnoreTerm, after
// grace (or when ctx ends), and forgets it.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	d.mu.Lock()
	d.calls = append(d.calls, Call{Op: "stop", ID: id})
	d.mu.Unlock()
	in, err := d.lookup("stop", id)
	if err != nil {
		return err
	}
	if !in.exited() {
		if in.b.IgnoreTerm && grace > 0 {
			t := time.NewTimer(grace)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			in.exit(-1, "killed by signal SIGKILL")
		} else {
			in.exit(-1, "killed by signal SIGTERM")
		}
	}
	d.mu.Lock()
	if d.instances[id] != in {
		d.mu.Unlock()
		return fmt.Errorf("stop instance %s: %w", id, driver.ErrNotFound) // a concurrent Stop won
	}
	delete(d.instances, id)
	d.mu.Unlock()
	close(in.removed)
	return nil
}

// Inspect reports the instance's status.
func (d *Driver) Inspect(ctx context.Context, id string) (driver.Status, error) {
	in, err := d.lookup("inspect", id)
	if err != nil {
		return driver.Status{}, err
	}
	return in.snapshot(), nil
}

// List reports every instance, by ID.
func (d *Driver) List(ctx context.Context) ([]driver.Status, error) {
	d.mu.Lock()
	var out []driver.Status
	for _, in := range d.instances {
		if in != nil {
			out = append(out, in.snapshot())
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b driver.Status) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Logs returns the instance's log: the fake's own lines (serving, exit) and
// what the scoring contract or AppendLog wrote.
func (d *Driver) Logs(ctx context.Context, id string, opts driver.LogOptions) (io.ReadCloser, error) {
	in, err := d.lookup("logs", id)
	if err != nil {
		return nil, err
	}
	return in.log.reader(ctx, opts, in.removed), nil
}

// Restart plays a restart of the server that owns the driver: every
// instance keeps running (and serving) but the driver forgets it, as a new
// process driver knows nothing until Recover re-adopts what its records
// name. Until Recover, Inspect, List, Logs and Stop do not see them.
func (d *Driver) Restart() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, in := range d.instances {
		if in != nil {
			d.leftovers[id] = in
			delete(d.instances, id)
		}
	}
}

// Recover re-adopts the instances a Restart left that still run, returning
// them, and forgets the ones that exited meanwhile. Without a Restart it
// returns nothing.
func (d *Driver) Recover(ctx context.Context) ([]driver.Status, error) {
	d.mu.Lock()
	left := d.leftovers
	d.leftovers = map[string]*instance{}
	d.mu.Unlock()
	var out []driver.Status
	for id, in := range left {
		if in.exited() {
			close(in.removed)
			continue
		}
		d.mu.Lock()
		if _, taken := d.instances[id]; taken {
			d.mu.Unlock()
			in.exit(-1, "killed by signal SIGKILL")
			close(in.removed)
			continue
		}
		d.instances[id] = in
		d.mu.Unlock()
		out = append(out, in.snapshot())
	}
	slices.SortFunc(out, func(a, b driver.Status) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// SetReady flips the instance's readiness route between 200 and 503.
func (d *Driver) SetReady(id string, ready bool) error {
	in, err := d.lookup("set ready", id)
	if err != nil {
		return err
	}
	in.ready.Store(ready)
	return nil
}

// SetLive flips the instance's liveness route between 200 and 503 (a hung
// server); readiness fails too while it is not live.
func (d *Driver) SetLive(id string, live bool) error {
	in, err := d.lookup("set live", id)
	if err != nil {
		return err
	}
	in.live.Store(live)
	return nil
}

// Crash makes the instance exit now with code, as if its process died.
func (d *Driver) Crash(id string, code int) error {
	in, err := d.lookup("crash", id)
	if err != nil {
		return err
	}
	in.exit(code, fmt.Sprintf("exited with code %d", code))
	return nil
}

// AppendLog writes a line to the instance's log.
func (d *Driver) AppendLog(id, line string) error {
	in, err := d.lookup("append log", id)
	if err != nil {
		return err
	}
	in.log.append(line)
	return nil
}

// Close ends every instance's server, leftovers of a Restart included. The
// fake forgets nothing, so a test can still Inspect after Close.
func (d *Driver) Close() {
	d.mu.Lock()
	ins := slices.Collect(maps.Values(d.instances))
	ins = append(ins, slices.Collect(maps.Values(d.leftovers))...)
	d.mu.Unlock()
	for _, in := range ins {
		if in != nil {
			in.exit(-1, "killed by signal SIGKILL")
		}
	}
}

// Transport returns an http.RoundTripper that delivers a request to the
// instance whose Status.Addr is the request's host, in memory, without a
// socket. A request to an unknown or exited instance fails like a refused
// TCP connection (errors.Is(err, syscall.ECONNREFUSED)). It works with and
// without NoListen.
func (d *Driver) Transport() http.RoundTripper { return transport{d} }

type transport struct{ d *Driver }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	var target *instance
	t.d.mu.Lock()
	for _, in := range t.d.instances {
		if in != nil && in.addr == req.URL.Host {
			target = in
		}
	}
	t.d.mu.Unlock()
	if target == nil || target.exited() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	rec := httptest.NewRecorder()
	target.handler.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
