// Package docker is the container driver: it runs each instance as a
// container through the Docker Engine API, so it works with Docker and with
// Podman's API service (`podman system service`), and builds images from
// build contexts through the same API.
//
// A container follows Azure's scoring-container contract (package
// container): the model and the code mounted read-only where Azure mounts
// them, the AZUREML_* variables, the inference_config port published on the
// loopback only, CPU and memory limits, an init process so SIGTERM stops the
// server promptly, and labels that name the instance, its template and the
// server that owns it. Probes are plumbline's (the reconciler's): engine
// health checks are not used (Podman runs them through systemd, which a
// server may not have).
//
// This package may import driver and container; it must not import the
// store, the registry, the reconciler or the gateway.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/plumbline/plumbline/internal/container"
	"github.com/plumbline/plumbline/internal/driver"
)

// Config configures a Driver.
type Config struct {
	// Host is the Engine API address: unix:///run/docker.sock,
	// unix:///run/podman/podman.sock, tcp://host:2376. "" means DOCKER_HOST,
	// else the platform default (unix:///var/run/docker.sock).
	Host string
	// Owner is the id of the server that owns the containers this driver
	// starts (the data dir's server id). It is written in the
	// plumbline.owner label, and the driver never touches a container
	// with another owner. Required.
	Owner string
	// PublishIP is the host address container ports are published on;
	// the zero value means 127.0.0.1 (loopback only).
	PublishIP netip.Addr
	Logger    *slog.Logger
}

// Driver runs instances as containers. It is safe for concurrent use.
type Driver struct {
	cli   *client.Client
	cfg   Config
	log   *slog.Logger
	mu    sync.Mutex        // protects addrs
	addrs map[string]string // instance ID → published host:port, kept after exit
}

var _ driver.Driver = (*Driver)(nil)

// New connects to the Engine API and checks that it answers.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.Owner == "" {
		return nil, errors.New("docker driver: an owner id is required")
	}
	if !cfg.PublishIP.IsValid() {
		cfg.PublishIP = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host := cfg.Host
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	opts := []client.Opt{client.WithUserAgent("plumbline")}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker driver: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		where := cli.DaemonHost()
		return nil, fmt.Errorf("docker driver: the Docker Engine API at %s does not answer (%v); start Docker, or Podman's API service (podman system service --time=0 unix:///run/podman/podman.sock), and pass its address with --docker-host or DOCKER_HOST", where, err)
	}
	return &Driver{cli: cli, cfg: cfg, log: cfg.Logger, addrs: map[string]string{}}, nil
}

// Close releases the API client.
func (d *Driver) Close() error { return d.cli.Close() }

// Name implements driver.Driver.
func (d *Driver) Name() string { return "docker" }

// Owner is the owner id the driver's containers carry.
func (d *Driver) Owner() string { return d.cfg.Owner }

// Host is the Engine API address in use.
func (d *Driver) Host() string { return d.cli.DaemonHost() }

// containerName is the container's name: the owner keeps two servers on one
// engine apart.
func (d *Driver) containerName(id string) string {
	owner := d.cfg.Owner
	if len(owner) > 12 {
		owner = owner[:12]
	}
	return "plumbline-" + owner + "-" + strings.ReplaceAll(id, "/", "_")
}

// find returns the container of instance id, or ErrNotFound.
func (d *Driver) find(ctx context.Context, id string) (dcontainer.Summary, error) {
	f := make(client.Filters).Add("label", container.LabelOwner+"="+d.cfg.Owner, container.LabelInstance+"="+id)
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return dcontainer.Summary{}, fmt.Errorf("instance %s: list containers: %w", id, err)
	}
	for _, c := range res.Items {
		if c.Labels[container.LabelInstance] == id && c.Labels[container.LabelOwner] == d.cfg.Owner {
			return c, nil
		}
	}
	return dcontainer.Summary{}, fmt.Errorf("instance %s: %w", id, driver.ErrNotFound)
}

// Start implements driver.Driver.
func (d *Driver) Start(ctx context.Context, spec driver.InstanceSpec) (driver.Status, error) {
	if spec.Image == "" {
		return driver.Status{}, &driver.StartError{ID: spec.ID, Reason: "the docker driver runs images; the deployment's environment has no image (set environment.image or environment.build)"}
	}
	if spec.Port < 1 || spec.Port > 65535 {
		return driver.Status{}, &driver.StartError{ID: spec.ID, Reason: fmt.Sprintf("container port %d is not 1-65535; set inference_config's scoring_route.port", spec.Port)}
	}
	if _, err := d.find(ctx, spec.ID); err == nil {
		return driver.Status{}, fmt.Errorf("start instance %s: %w", spec.ID, driver.ErrExists)
	} else if !errors.Is(err, driver.ErrNotFound) {
		return driver.Status{}, err
	}
	if err := d.ensureImage(ctx, spec); err != nil {
		return driver.Status{}, err
	}

	layout := container.For(spec)
	port, err := network.ParsePort(strconv.Itoa(spec.Port) + "/tcp")
	if err != nil {
		return driver.Status{}, &driver.StartError{ID: spec.ID, Reason: "container port", Err: err}
	}
	cfg := &dcontainer.Config{
		Image:        spec.Image,
		Env:          layout.Env,
		Labels:       container.Labels(spec, d.cfg.Owner),
		ExposedPorts: network.PortSet{port: {}},
	}
	switch spec.Runtime {
	case driver.RuntimeGeneric:
		cfg.Cmd = layout.Command(spec)
	case driver.RuntimePlumber:
		// plumbline.runtime: plumber in an image: the built-in launcher
		// runs with the image's R, on the container port.
		cfg.Entrypoint = []string{"Rscript", "-e", plumberLauncher(spec.Port)}
		cfg.Cmd = []string{}
	}
	yes := true
	host := &dcontainer.HostConfig{
		PortBindings: network.PortMap{port: {{HostIP: d.cfg.PublishIP, HostPort: ""}}},
		Init:         &yes, // SIGTERM reaches the server even when it is PID 1's child
		SecurityOpt:  []string{"no-new-privileges"},
		Resources:    resources(spec),
	}
	for _, m := range []*container.Mount{layout.Model, layout.Code} {
		if m != nil {
			host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.Host, Target: m.Container, ReadOnly: true})
		}
	}
	created, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: host, Name: d.containerName(spec.ID)})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return driver.Status{}, fmt.Errorf("start instance %s: %w: %v", spec.ID, driver.ErrExists, err)
		}
		return driver.Status{}, fmt.Errorf("start instance %s: create container: %w", spec.ID, err)
	}
	if _, err := d.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		d.remove(created.ID)
		if isUserStartError(err) {
			return driver.Status{}, &driver.StartError{ID: spec.ID, Reason: "the container cannot start", Err: err}
		}
		return driver.Status{}, fmt.Errorf("start instance %s: start container: %w", spec.ID, err)
	}
	st, err := d.inspect(ctx, spec.ID, created.ID)
	if err != nil {
		return st, err
	}
	if st.Addr == "" && st.State != driver.StateExited {
		d.remove(created.ID)
		return driver.Status{}, fmt.Errorf("start instance %s: the engine published no host port for %s", spec.ID, port)
	}
	return st, nil
}

// plumberLauncher is the R code of plumbline's launcher, the equivalent
// of the seed's start_plumber.R, on port.
func plumberLauncher(port int) string {
	return `pr <- plumber::plumb(file.path(Sys.getenv("AML_APP_ROOT"), Sys.getenv("AZUREML_ENTRY_SCRIPT"))); ` +
		`pr$setDocs(TRUE); pr$run(host = "0.0.0.0", port = ` + strconv.Itoa(port) + `)`
}

// resources maps the spec's limits to the engine's.
func resources(spec driver.InstanceSpec) dcontainer.Resources {
	var r dcontainer.Resources
	if spec.CPU > 0 {
		r.NanoCPUs = int64(math.Round(spec.CPU * 1e9))
	}
	if spec.MemoryBytes > 0 {
		r.Memory = spec.MemoryBytes
		r.MemorySwap = spec.MemoryBytes // no swap beyond the limit, as on Azure's VMs
	}
	return r
}

// isUserStartError reports errors the user must fix: a command that does
// not exist in the image, a bad working directory.
func isUserStartError(err error) bool {
	s := err.Error()
	for _, part := range []string{"executable file not found", "no such file or directory", "permission denied", "not a directory"} {
		if strings.Contains(s, part) {
			return true
		}
	}
	return false
}

// ensureImage makes sure spec.Image is on the engine: present, or pulled.
func (d *Driver) ensureImage(ctx context.Context, spec driver.InstanceSpec) error {
	ok, err := d.ImageExists(ctx, spec.Image)
	if err != nil {
		return fmt.Errorf("start instance %s: %w", spec.ID, err)
	}
	if ok {
		return nil
	}
	if err := d.Pull(ctx, spec.Image, io.Discard); err != nil {
		return &driver.StartError{ID: spec.ID, Reason: fmt.Sprintf("image %s is not on this machine and could not be pulled; build it (plumbline image build DIR -t %s) or load it", spec.Image, spec.Image), Err: err}
	}
	return nil
}

// remove force-removes a container, logging a failure.
func (d *Driver) remove(containerID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.cli.ContainerRemove(ctx, containerID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		d.log.Error("remove container", "container", containerID, "err", err)
	}
}

// inspect reports one container's status.
func (d *Driver) inspect(ctx context.Context, id, containerID string) (driver.Status, error) {
	res, err := d.cli.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return driver.Status{}, fmt.Errorf("instance %s: %w", id, driver.ErrNotFound)
		}
		return driver.Status{}, fmt.Errorf("inspect instance %s: %w", id, err)
	}
	c := res.Container
	st := driver.Status{ID: id, State: driver.StateUnknown}
	if c.Config != nil {
		st.Template = c.Config.Labels[container.LabelTemplate]
	}
	if c.NetworkSettings != nil {
		for _, bs := range c.NetworkSettings.Ports {
			for _, b := range bs {
				if b.HostPort != "" {
					ip := d.cfg.PublishIP
					if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
						ip = b.HostIP
					}
					st.Addr = net.JoinHostPort(ip.String(), b.HostPort)
				}
			}
		}
	}
	d.mu.Lock()
	if st.Addr != "" {
		d.addrs[id] = st.Addr
	} else {
		st.Addr = d.addrs[id] // an exited container's ports are gone
	}
	d.mu.Unlock()
	s := c.State
	if s == nil {
		return st, nil
	}
	st.PID = s.Pid
	st.StartedAt = parseTime(s.StartedAt)
	switch {
	case s.Running || s.Restarting || s.Paused:
		st.State = driver.StateRunning
	case s.Status == "created":
		st.State = driver.StateStarting
	default: // exited, dead, stopped, configured
		st.State = driver.StateExited
		st.ExitCode = s.ExitCode
		st.ExitedAt = parseTime(s.FinishedAt)
		if st.ExitedAt.IsZero() {
			st.ExitedAt = time.Now().UTC()
		}
		st.PID = 0
		switch {
		case s.OOMKilled:
			st.ExitCode, st.Message = -1, fmt.Sprintf("killed: out of memory (the container's memory limit is %s)", memString(c.HostConfig))
		case s.ExitCode > 128 && s.ExitCode <= 128+64:
			st.ExitCode, st.Message = -1, fmt.Sprintf("killed by signal %s", signalName(s.ExitCode-128))
		default:
			st.Message = fmt.Sprintf("exited with code %d", s.ExitCode)
		}
		if s.Error != "" {
			st.Message += ": " + s.Error
		}
	}
	return st, nil
}

func memString(h *dcontainer.HostConfig) string {
	if h == nil || h.Memory == 0 {
		return "not set"
	}
	return strconv.FormatInt(h.Memory>>20, 10) + " MiB"
}

func signalName(n int) string {
	names := map[int]string{1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}
	if s, ok := names[n]; ok {
		return s
	}
	return "signal " + strconv.Itoa(n)
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 2000 {
		return time.Time{}
	}
	return t.UTC()
}

// Inspect implements driver.Driver.
func (d *Driver) Inspect(ctx context.Context, id string) (driver.Status, error) {
	c, err := d.find(ctx, id)
	if err != nil {
		return driver.Status{}, err
	}
	return d.inspect(ctx, id, c.ID)
}

// List implements driver.Driver.
func (d *Driver) List(ctx context.Context) ([]driver.Status, error) {
	cs, err := d.owned(ctx)
	if err != nil {
		return nil, err
	}
	var out []driver.Status
	for _, c := range cs {
		st, err := d.inspect(ctx, c.Labels[container.LabelInstance], c.ID)
		if errors.Is(err, driver.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// owned lists this server's containers.
func (d *Driver) owned(ctx context.Context) ([]dcontainer.Summary, error) {
	f := make(client.Filters).Add("label", container.LabelOwner+"="+d.cfg.Owner)
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []dcontainer.Summary
	for _, c := range res.Items {
		if c.Labels[container.LabelOwner] == d.cfg.Owner && c.Labels[container.LabelInstance] != "" {
			out = append(out, c)
		}
	}
	return out, nil
}

// Stop implements driver.Driver: SIGTERM (through the init process), grace
// (rounded up to whole seconds, the engine's unit), SIGKILL, then removal.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	c, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	secs := int(math.Ceil(grace.Seconds()))
	if _, err := d.cli.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
		d.log.Warn("stop container; removing it by force", "instance", id, "err", err)
	}
	if _, err := d.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop instance %s: remove container: %w", id, err)
	}
	d.mu.Lock()
	delete(d.addrs, id)
	d.mu.Unlock()
	return nil
}

// Recover implements driver.Driver: this owner's running containers are
// re-adopted (the reconciler keeps those whose template it still wants and
// stops the rest); exited ones are removed.
func (d *Driver) Recover(ctx context.Context) ([]driver.Status, error) {
	cs, err := d.owned(ctx)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	var out []driver.Status
	var errs []error
	for _, c := range cs {
		id := c.Labels[container.LabelInstance]
		st, err := d.inspect(ctx, id, c.ID)
		if errors.Is(err, driver.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.State == driver.StateRunning && st.Addr != "" {
			out = append(out, st)
			continue
		}
		if _, err := d.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("recover: remove container of %s: %w", id, err))
		}
		d.mu.Lock()
		delete(d.addrs, id)
		d.mu.Unlock()
	}
	if len(cs) > 0 {
		d.log.Info("containers of a previous run", "found", len(cs), "adopted", len(out))
	}
	return out, errors.Join(errs...)
}
