package process

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
)

var _ driver.Driver = (*Driver)(nil)

// Driver runs instances as local child processes. Create it with New, call
// Recover once, and Close it when the server shuts down.
type Driver struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File // StateDir/lock, flocked while the driver lives

	stopLoop context.CancelFunc
	loopDone chan struct{} // closed when the rotation loop has returned
	closing  chan struct{} // closed by Close; ends the watchers of re-adopted instances

	// mu guards instances, ports and closed.
	mu sync.Mutex
	// instances by ID. A nil value reserves the ID while Start runs.
	instances map[string]*instance
	// ports given to instances that have not been stopped, to their IDs.
	ports  map[int]string
	closed bool
}

// New validates cfg, creates and locks its StateDir, and starts the log
// rotation loop. It does not touch what an earlier run left in StateDir:
// that is Recover's job.
func New(cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "instances"), 0o700); err != nil {
		return nil, fmt.Errorf("process driver: create state dir: %w", err)
	}
	lock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Driver{
		cfg:       cfg,
		log:       cfg.Logger.With("driver", "process"),
		lock:      lock,
		stopLoop:  cancel,
		loopDone:  make(chan struct{}),
		closing:   make(chan struct{}),
		instances: map[string]*instance{},
		ports:     map[int]string{},
	}
	go d.rotateLoop(ctx)
	return d, nil
}

// lockStateDir takes an exclusive flock on dir/lock, so that two servers
// never share a state dir (each one's Recover would kill the other's
// instances). The kernel drops the lock when the process dies, kill -9
// included.
func lockStateDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("process driver: open state dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(f.Name())
		f.Close()
		return nil, fmt.Errorf("process driver: state dir %s is in use by another plumbline (pid %s): give each server its own: %w",
			dir, strings.TrimSpace(string(owner)), err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// Close stops the rotation loop and unlocks StateDir. It leaves instances
// running: on a clean shutdown the caller stops them first (List, then
// Stop); after a crash, the next run's Recover ends them.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	close(d.closing)
	d.stopLoop()
	<-d.loopDone
	return d.lock.Close()
}

// Name is "process".
func (d *Driver) Name() string { return "process" }

// Start runs spec as a child process in its own process group, on a port of
// its own, and returns once the process exists (State Running; whether it
// serves is for the caller's probes to find out). A spec the user must fix
// (image runtime, missing executable or R, unreadable code folder or
// scoring script) fails with a *driver.StartError; other errors are worth a
// retry.
func (d *Driver) Start(ctx context.Context, spec driver.InstanceSpec) (driver.Status, error) {
	if err := validID(spec.ID); err != nil {
		return driver.Status{}, startErr(spec.ID, "invalid instance ID", err)
	}
	if err := ctx.Err(); err != nil {
		return driver.Status{}, fmt.Errorf("start instance %s: %w", spec.ID, err)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return driver.Status{}, fmt.Errorf("start instance %s: process driver is closed", spec.ID)
	}
	if _, ok := d.instances[spec.ID]; ok {
		d.mu.Unlock()
		return driver.Status{}, fmt.Errorf("start instance %s: %w", spec.ID, driver.ErrExists)
	}
	d.instances[spec.ID] = nil // reserved while we spawn
	d.mu.Unlock()

	in, err := d.spawn(spec)

	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		delete(d.instances, spec.ID)
		return driver.Status{}, err
	}
	d.instances[spec.ID] = in
	return in.status(), nil
}

// validID keeps IDs usable as folder names.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") {
		return fmt.Errorf("%q cannot name a folder", id)
	}
	return nil
}

// spawn does Start's work outside d.mu. On error nothing is left behind:
// no process, no port reservation, no folder.
func (d *Driver) spawn(spec driver.InstanceSpec) (in *instance, err error) {
	port, err := d.allocPort(spec.ID)
	if err != nil {
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
	}
	defer func() {
		if err != nil {
			d.releasePort(port)
		}
	}()
	exe, args, err := d.argv(spec, port)
	if err != nil {
		return nil, err
	}

	dir := filepath.Join(d.cfg.StateDir, "instances", spec.ID)
	if err := os.RemoveAll(dir); err != nil { // logs of an earlier instance with this ID
		return nil, fmt.Errorf("start instance %s: clear old folder: %w", spec.ID, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if spec.RWorkers != nil && spec.Runtime == driver.RuntimePlumber {
		if _, err := d.prepareRWorkerDir(spec.ID); err != nil {
			return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
		}
		defer func() {
			if err != nil {
				_ = d.removeRWorkerDir(spec.ID)
			}
		}()
	}
	// The child writes its stdout and stderr straight into the file (no
	// pipe through plumbline), so it runs on unharmed when plumbline dies.
	// O_APPEND keeps its writes at the end after copy-truncate rotation.
	logf, err := os.OpenFile(filepath.Join(dir, "output.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start instance %s: open log: %w", spec.ID, err)
	}
	defer logf.Close() // the child has its own descriptor

	cmd := &exec.Cmd{
		Path:        exe,
		Args:        args,
		Env:         environ(os.Environ(), d.cfg.PassEnv, spec, port),
		Dir:         spec.CodeDir,
		Stdout:      logf,
		Stderr:      logf,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := d.isolate(cmd, spec); err != nil {
		return nil, err
	}
	if _, ok := spec.Env["PORT"]; ok {
		d.log.Warn("user environment sets PORT: the server may not listen on the port plumbline probes",
			"instance", spec.ID, "assigned_port", port)
	}
	if err := cmd.Start(); err != nil {
		if isStartErr(err) {
			return nil, startErr(spec.ID, "cannot run "+strconv.Quote(exe), err)
		}
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
	}
	in = &instance{
		id:        spec.ID,
		dir:       dir,
		port:      port,
		addr:      net.JoinHostPort(d.cfg.dialHost(), strconv.Itoa(port)),
		cmd:       cmd,
		pid:       cmd.Process.Pid,
		startedAt: time.Now(),
		template:  spec.Template,
		reaped:    make(chan struct{}),
		removed:   make(chan struct{}),
	}
	go in.reap(d.cfg.BindHost, d.log)

	// Between cmd.Start and this write, a kill -9 of plumbline would leave
	// the process without a record, and Recover could not find it. The
	// window is a /proc read and a small file write.
	if err := writeRecord(in, spec, exe); err != nil {
		_ = endGroup(context.Background(), in.pid, 0, in.reaped)
		return nil, fmt.Errorf("start instance %s: %w", spec.ID, err)
	}
	d.log.Info("instance started", "instance", spec.ID, "pid", in.pid, "addr", in.addr, "runtime", spec.Runtime)
	return in, nil
}

func (d *Driver) releasePort(port int) {
	d.mu.Lock()
	delete(d.ports, port)
	d.mu.Unlock()
}

// lookup returns the instance with that ID, or an error wrapping
// driver.ErrNotFound.
func (d *Driver) lookup(op, id string) (*instance, error) {
	d.mu.Lock()
	in := d.instances[id]
	d.mu.Unlock()
	if in == nil {
		return nil, fmt.Errorf("%s instance %s: %w", op, id, driver.ErrNotFound)
	}
	return in, nil
}

// Stop sends SIGTERM to the instance's whole process group, waits up to
// grace, then SIGKILLs the group, and returns once no process of the group
// runs. It then forgets the instance and deletes its folder, logs included:
// read what you need with Logs before Stop. If ctx ends during the grace
// period the group is killed at once.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	in, err := d.lookup("stop", id)
	if err != nil {
		return err
	}
	in.stopMu.Lock()
	defer in.stopMu.Unlock()
	if _, err := d.lookup("stop", id); err != nil {
		return err // a concurrent Stop finished first
	}
	if err := endGroup(ctx, in.pid, grace, in.reaped); err != nil {
		return fmt.Errorf("stop instance %s: %w", id, err)
	}

	d.mu.Lock()
	delete(d.instances, id)
	delete(d.ports, in.port)
	d.mu.Unlock()
	close(in.removed)

	in.logMu.Lock()
	in.gone = true
	err = errors.Join(os.RemoveAll(in.dir), d.removeRWorkerDir(id))
	in.logMu.Unlock()
	if err != nil {
		return fmt.Errorf("stop instance %s: remove its folder: %w", id, err)
	}
	d.log.Info("instance stopped", "instance", id, "pid", in.pid)
	return nil
}

// Inspect reports the instance's status: Running while the server process
// lives, Exited with its exit code (-1 and the signal in Message when a
// signal ended it) once it has ended, until Stop.
func (d *Driver) Inspect(ctx context.Context, id string) (driver.Status, error) {
	in, err := d.lookup("inspect", id)
	if err != nil {
		return driver.Status{}, err
	}
	return in.status(), nil
}

// List reports every instance started and not yet stopped, by ID.
func (d *Driver) List(ctx context.Context) ([]driver.Status, error) {
	d.mu.Lock()
	ins := make([]*instance, 0, len(d.instances))
	for _, in := range d.instances {
		if in != nil {
			ins = append(ins, in)
		}
	}
	d.mu.Unlock()
	out := make([]driver.Status, len(ins))
	for i, in := range ins {
		out[i] = in.status()
	}
	slices.SortFunc(out, func(a, b driver.Status) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
