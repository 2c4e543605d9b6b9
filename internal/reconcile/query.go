package reconcile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/store"
)

// InstanceStatus describes one instance for `show`.
type InstanceStatus struct {
	Name     string
	State    string // Starting, Ready, Unready, Stopping, Exited
	Ready    bool
	Restarts int
	Started  time.Time
	Message  string
	Addr     string
}

// Instances reports a deployment's instances, ordered by name index.
func (r *Reconciler) Instances(endpoint, deployment string) []InstanceStatus {
	r.mu.Lock()
	ds := r.deps[key(endpoint, deployment)]
	r.mu.Unlock()
	if ds == nil {
		return nil
	}
	var out []InstanceStatus
	for _, in := range r.instancesOf(ds) {
		v := in.view()
		st := InstanceStatus{Name: in.name, Ready: v.routable(), Started: in.startedAt, Addr: in.addr, State: v.state()}
		switch st.State {
		case store.InstanceExited:
			st.Message = fmt.Sprintf("exited with code %d", v.exitCode)
		case store.InstanceUnready, store.InstanceStarting:
			st.Message = v.lastProbeError
		}
		r.mu.Lock()
		st.Restarts = ds.totalRestarts[in.name]
		r.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// ErrNoInstances: the deployment has no instance whose logs could be read.
// (A stopped instance's logs are deleted with it.)
var ErrNoInstances = errors.New("no instances")

// Logs writes a deployment's console logs to w: the last lines of each
// instance (or only of instance, when given) under a "==> name <==" header,
// or, with follow, every instance's lines as they come, prefixed with the
// instance name, until ctx ends.
func (r *Reconciler) Logs(ctx context.Context, endpoint, deployment, instanceName string, lines int, follow bool, w io.Writer) error {
	return r.ContainerLogs(ctx, endpoint, deployment, instanceName, "", lines, follow, w)
}

// ErrNoContainers: the driver's instances have one container, so there is
// no other container's log to read (the storage initializer's steps are
// then the deployment's events).
var ErrNoContainers = fmt.Errorf("the driver's instances have a single container: %w", errors.ErrUnsupported)

// ContainerLogs is Logs of one container of each instance, for a driver
// whose instances have several (Kubernetes: "storage-initializer", the
// init container that fetched the model and code); "" means the scoring
// server's. On other drivers a container other than "" is ErrNoContainers.
func (r *Reconciler) ContainerLogs(ctx context.Context, endpoint, deployment, instanceName, container string, lines int, follow bool, w io.Writer) error {
	ids, names, err := r.logInstances(ctx, endpoint, deployment, instanceName)
	if err != nil {
		return err
	}
	if _, ok := r.cfg.Driver.(driver.DeploymentDriver); container != "" && !ok {
		return ErrNoContainers
	}
	if len(ids) == 0 {
		return fmt.Errorf("deployment %s/%s: %w", endpoint, deployment, ErrNoInstances)
	}
	if !follow {
		for i, id := range ids {
			rc, err := r.cfg.Driver.Logs(ctx, id, driver.LogOptions{Tail: lines, Container: container})
			if err != nil {
				if errors.Is(err, driver.ErrNotFound) && len(ids) > 1 {
					continue
				}
				return fmt.Errorf("logs of %s: %w", names[i], err)
			}
			if len(ids) > 1 {
				fmt.Fprintf(w, "==> %s <==\n", names[i])
			}
			_, err = io.Copy(w, rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	// Follow: one reader per instance, lines prefixed, writes serialised.
	var mu sync.Mutex // serialises writes to w
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	// Open every reader before writing anything, so an error is returned
	// while nothing writes to w yet.
	readers := make([]io.ReadCloser, 0, len(ids))
	for i, id := range ids {
		rc, err := r.cfg.Driver.Logs(ctx, id, driver.LogOptions{Tail: lines, Follow: true, Container: container})
		if err != nil {
			for _, open := range readers {
				open.Close()
			}
			return fmt.Errorf("logs of %s: %w", names[i], err)
		}
		readers = append(readers, rc)
	}
	for i, rc := range readers {
		prefix := ""
		if len(ids) > 1 {
			prefix = "[" + names[i] + "] "
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer rc.Close()
			sc := bufio.NewScanner(rc)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				mu.Lock()
				_, err := io.WriteString(w, prefix+strings.TrimRight(sc.Text(), "\r")+"\n")
				if f, ok := w.(interface{ Flush() }); ok {
					f.Flush()
				}
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if ctx.Err() != nil {
		return nil
	}
	return <-errs
}

// logInstances lists the IDs and names of a deployment's instances (or of
// the one named): the reconciler's own, or, on a DeploymentDriver whose
// platform runs the replicas, the replicas it mirrored into the store.
func (r *Reconciler) logInstances(ctx context.Context, endpoint, deployment, instanceName string) (ids, names []string, err error) {
	if _, ok := r.cfg.Driver.(driver.DeploymentDriver); ok {
		rows, err := r.cfg.Store.ListInstances(ctx, endpoint, deployment)
		if err != nil {
			return nil, nil, fmt.Errorf("deployment %s/%s: %w", endpoint, deployment, err)
		}
		for _, row := range rows {
			if instanceName == "" || row.Name == instanceName {
				ids = append(ids, row.ID)
				names = append(names, row.Name)
			}
		}
		return ids, names, nil
	}
	r.mu.Lock()
	ds := r.deps[key(endpoint, deployment)]
	r.mu.Unlock()
	if ds != nil {
		for _, in := range r.instancesOf(ds) {
			if instanceName == "" || in.name == instanceName {
				ids = append(ids, in.id)
				names = append(names, in.name)
			}
		}
	}
	return ids, names, nil
}
