package process

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/plumber"
	"github.com/plumbline/plumbline/internal/rworker"
)

// basicEnv are the variables of plumbline's environment every instance
// inherits: what a shell user's program expects, and where R finds its
// libraries. Anything else, plumbline's secrets included, stays behind.
var basicEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR",
	"R_LIBS", "R_LIBS_USER", "R_LIBS_SITE",
}

// defaultPath is PATH when plumbline itself has none.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// environ builds an instance's environment, in this order, later entries
// replacing earlier ones of the same name: the basics inherited from
// parent (plus cfg.PassEnv), the container contract (AZUREML_MODEL_DIR,
// AML_APP_ROOT, AZUREML_ENTRY_SCRIPT, PORT), then the user's variables,
// sorted by name. User values win, as on Azure's local endpoints.
func environ(parent []string, passEnv []string, spec driver.InstanceSpec, port int) []string {
	var keys []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	for _, kv := range parent {
		k, v, ok := strings.Cut(kv, "=")
		if ok && (slices.Contains(basicEnv, k) || strings.HasPrefix(k, "LC_") || slices.Contains(passEnv, k)) {
			set(k, v)
		}
	}
	if _, ok := vals["PATH"]; !ok {
		set("PATH", defaultPath)
	}
	if spec.ModelDir != "" {
		set("AZUREML_MODEL_DIR", spec.ModelDir)
	}
	if spec.CodeDir != "" {
		set("AML_APP_ROOT", spec.CodeDir)
	}
	if spec.EntryScript != "" {
		set("AZUREML_ENTRY_SCRIPT", spec.EntryScript)
	}
	set("PORT", strconv.Itoa(port))
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		set(k, spec.Env[k])
	}
	env := make([]string, len(keys))
	for i, k := range keys {
		env[i] = k + "=" + vals[k]
	}
	return env
}

// isolate makes cmd run as the configured instance user, when there is
// one: after checking that the user can reach the code and model folders,
// with its identity in HOME, USER and LOGNAME.
func (d *Driver) isolate(cmd *exec.Cmd, spec driver.InstanceSpec) error {
	ru := d.cfg.RunAs
	if ru == nil {
		return nil
	}
	for _, dir := range []struct{ what, path string }{{"code folder", spec.CodeDir}, {"model folder", spec.ModelDir}} {
		if dir.path == "" {
			continue
		}
		if err := ru.CanReach(dir.path); err != nil {
			return startErr(spec.ID, "instances run as user "+ru.Name+", who cannot read the "+dir.what+
				": give that user access to the data dir (plumbline serve sets it up in a data dir outside /root) or run instances as root with --instance-user root", err)
		}
	}
	ru.apply(cmd, spec.Env)
	return nil
}

// Sandbox makes cmd, a command that reads a deployment's code or model
// outside an instance (a pre-start check that loads the model in R), run as
// the instances' user, as an instance would. On a nil RunAs (no isolation)
// it does nothing.
func (ru *RunAs) Sandbox(cmd *exec.Cmd) {
	if ru != nil {
		ru.apply(cmd, nil)
	}
}

// apply sets cmd's credential and the user's HOME, USER and LOGNAME (unless
// userEnv sets them).
func (ru *RunAs) apply(cmd *exec.Cmd, userEnv map[string]string) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.SysProcAttr.Credential = ru.credential()
	home := ru.Home
	if home == "" {
		home = "/nonexistent"
	}
	over := map[string]string{"HOME": home, "USER": ru.Name, "LOGNAME": ru.Name}
	for k := range userEnv {
		delete(over, k) // the deployment's own values win, as everywhere
	}
	for i, kv := range cmd.Env {
		k, _, _ := strings.Cut(kv, "=")
		if v, ok := over[k]; ok {
			cmd.Env[i] = k + "=" + v
			delete(over, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(over)) {
		cmd.Env = append(cmd.Env, k+"="+over[k])
	}
}

// startErr builds the terminal error for a spec the user must fix.
func startErr(id, reason string, err error) error {
	return &driver.StartError{ID: id, Reason: reason, Err: err}
}

// argv returns the resolved executable and argv that run spec. Every
// failure is a *driver.StartError: retrying cannot fix it.
func (d *Driver) argv(spec driver.InstanceSpec, port int) (string, []string, error) {
	if err := checkCodeDir(spec); err != nil {
		return "", nil, err
	}
	switch spec.Runtime {
	case driver.RuntimeGeneric:
		if len(spec.Command) == 0 {
			return "", nil, startErr(spec.ID, "runtime generic needs a command", nil)
		}
		r := strings.NewReplacer("{port}", strconv.Itoa(port), "{model_dir}", spec.ModelDir, "{code_dir}", spec.CodeDir)
		args := make([]string, len(spec.Command))
		for i, a := range spec.Command {
			args[i] = r.Replace(a)
		}
		exe, err := d.findExecutable(args[0], spec.CodeDir)
		if err != nil {
			return "", nil, startErr(spec.ID, "cannot run command "+strconv.Quote(args[0]), err)
		}
		return exe, args, nil
	case driver.RuntimePlumber:
		if spec.EntryScript == "" {
			return "", nil, startErr(spec.ID, "runtime plumber needs a scoring script (code_configuration.scoring_script)", nil)
		}
		if f, err := os.Open(filepath.Join(spec.CodeDir, spec.EntryScript)); err != nil {
			return "", nil, startErr(spec.ID, "cannot read scoring script", err)
		} else {
			f.Close()
		}
		exe, err := d.findExecutable(d.cfg.Rscript, "")
		if err != nil {
			return "", nil, startErr(spec.ID, "cannot run R: install it (Debian: apt-get install r-base-core r-cran-plumber) or set the driver's Rscript path", err)
		}
		if rw := spec.RWorkers; rw != nil {
			// The lean R runtime: plumbline's own supervisor, which runs
			// R itself.
			self, err := d.cfg.self()
			if err != nil {
				return "", nil, startErr(spec.ID, "cannot find the plumbline executable for the lean R runtime", err)
			}
			c := rworker.Config{
				Listen:         net.JoinHostPort(d.cfg.BindHost, strconv.Itoa(port)),
				Dir:            RWorkerDir(d.cfg.StateDir, spec.ID),
				Rscript:        exe,
				Workers:        rw.Workers,
				MaxRequests:    rw.MaxRequests,
				MaxMemoryBytes: rw.MaxMemoryBytes,
				RequestTimeout: rw.RequestTimeout,
				LivenessPath:   rw.LivenessPath,
				ReadinessPath:  rw.ReadinessPath,
			}
			if err := c.Validate(); err != nil {
				return "", nil, startErr(spec.ID, "invalid lean R runtime settings", err)
			}
			return self, append([]string{self}, c.Args()...), nil
		}
		return exe, []string{exe, "-e", plumber.Launcher(d.cfg.BindHost)}, nil
	case driver.RuntimeImage:
		return "", nil, startErr(spec.ID, "the process driver cannot run container images; run plumbline serve --driver docker (Docker or Podman), or give the deployment a code_configuration with a plumber.R (runtime plumber) or a command (runtime generic)", nil)
	default:
		return "", nil, startErr(spec.ID, fmt.Sprintf("unknown runtime %q (want plumber, generic or image)", spec.Runtime), nil)
	}
}

// checkCodeDir makes sure a spec's code dir, when it has one, is a folder
// the server can read: its working directory and AML_APP_ROOT.
func checkCodeDir(spec driver.InstanceSpec) error {
	if spec.CodeDir == "" {
		if spec.Runtime == driver.RuntimePlumber {
			return startErr(spec.ID, "runtime plumber needs a code folder (code_configuration.code)", nil)
		}
		return nil
	}
	f, err := os.Open(spec.CodeDir)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
		if errors.Is(err, io.EOF) {
			err = nil // empty, but readable
		}
	}
	if err != nil {
		return startErr(spec.ID, "cannot read code folder", err)
	}
	return nil
}

// findExecutable resolves name as findExecutable does, and when instances
// run as another user, to a file that user can run: a bare name is looked
// up on PATH skipping entries that user cannot reach (a python3 under
// /root/.pyenv), and any other path must be reachable by that user.
func (d *Driver) findExecutable(name, dir string) (string, error) {
	ru := d.cfg.RunAs
	if ru == nil {
		return findExecutable(name, dir)
	}
	if strings.Contains(name, "/") {
		exe, err := findExecutable(name, dir)
		if err != nil {
			return "", err
		}
		if err := ru.CanReach(exe); err != nil {
			return "", fmt.Errorf("instances run as user %s: %w", ru.Name, err)
		}
		return exe, nil
	}
	var blocked []string
	for _, p := range filepath.SplitList(os.Getenv("PATH")) {
		if p == "" || !filepath.IsAbs(p) {
			continue
		}
		exe, err := findExecutable(filepath.Join(p, name), "")
		if err != nil {
			continue
		}
		if err := ru.CanReach(exe); err != nil {
			blocked = append(blocked, exe)
			continue
		}
		return exe, nil
	}
	if len(blocked) > 0 {
		return "", fmt.Errorf("%s is at %s, which user %s (instances run as it) cannot run: install it where that user can (e.g. /usr/bin or /usr/local/bin)",
			name, strings.Join(blocked, ", "), ru.Name)
	}
	return exec.LookPath(name)
}

// findExecutable resolves name the way exec would run it from dir: a bare
// name on PATH, a relative path from dir, an absolute path as is; and
// checks that it is an executable file.
func findExecutable(name, dir string) (string, error) {
	if !strings.Contains(name, "/") {
		return exec.LookPath(name)
	}
	if !filepath.IsAbs(name) && dir != "" {
		name = filepath.Join(dir, name)
	}
	fi, err := os.Stat(name)
	switch {
	case err != nil:
		return "", err
	case fi.IsDir():
		return "", fmt.Errorf("%s is a directory", name)
	case fi.Mode()&0o111 == 0:
		return "", fmt.Errorf("%s: %w (not executable)", name, fs.ErrPermission)
	}
	return name, nil
}

// isStartErr tells a failed exec the user must fix (no such file, no
// permission, not an executable format) from a transient one (no memory,
// too many processes).
func isStartErr(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) ||
		errors.Is(err, syscall.ENOEXEC) || errors.Is(err, syscall.ENOTDIR)
}

// allocPort finds a free TCP port on BindHost and reserves it for id.
//
// The race: the port is free when the kernel hands it out here, but the
// listener is closed again before the server binds it, and anything on the
// machine may take it in between. The driver never hands the same port to
// two of its live instances; against other programs it cannot guard. A
// server that loses the race fails to bind and exits; the instance reports
// Exited (with a Message saying the port is now taken) and the reconciler's
// restart gets a new port.
func (d *Driver) allocPort(id string) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(d.cfg.BindHost, "0"))
		if err != nil {
			return 0, fmt.Errorf("find a free port on %s: %w", d.cfg.BindHost, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		d.mu.Lock()
		_, taken := d.ports[port]
		if !taken {
			d.ports[port] = id
		}
		d.mu.Unlock()
		if !taken {
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free port on %s: every port offered is already given to an instance", d.cfg.BindHost)
}

// portTaken reports whether something listens on host:port now.
func portTaken(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	l.Close()
	return false
}
