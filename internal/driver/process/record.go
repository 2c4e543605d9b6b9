package process

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/plumbline/plumbline/internal/driver"
)

// record is what StateDir/instances/<id>/record.json keeps about a started
// instance, for the next run's Recover. It holds no environment and no
// arguments: they may carry the user's secrets.
type record struct {
	ID   string `json:"id"`
	PID  int    `json:"pid"`
	PGID int    `json:"pgid"`
	// StartTime is field 22 of /proc/<pid>/stat, in clock ticks after boot.
	// A PID reused by a later process has another start time.
	StartTime uint64 `json:"start_time"`
	// BootID is /proc/sys/kernel/random/boot_id: after a reboot, PIDs and
	// start times begin again and may match unrelated processes.
	BootID    string    `json:"boot_id,omitempty"`
	Port      int       `json:"port"`
	Addr      string    `json:"addr"`
	StartedAt time.Time `json:"started_at"`
	// Template is driver.InstanceSpec.Template, reported again after a
	// re-adoption so the reconciler can tell whether the instance runs the
	// plan it wants.
	Template  string `json:"template,omitempty"`
	ServerPID int    `json:"server_pid"` // the plumbline process that started it

	// A summary of the spec, for humans reading the folder.
	Runtime    driver.Runtime `json:"runtime"`
	Endpoint   string         `json:"endpoint,omitempty"`
	Deployment string         `json:"deployment,omitempty"`
	Executable string         `json:"executable"`
	CodeDir    string         `json:"code_dir,omitempty"`
	ModelDir   string         `json:"model_dir,omitempty"`
}

// writeRecord writes in's record atomically (temporary file, then rename).
func writeRecord(in *instance, spec driver.InstanceSpec, exe string) error {
	rec := record{
		ID:         in.id,
		PID:        in.pid,
		PGID:       in.pid,
		BootID:     bootID(),
		Port:       in.port,
		Addr:       in.addr,
		StartedAt:  in.startedAt,
		Template:   in.template,
		ServerPID:  os.Getpid(),
		Runtime:    spec.Runtime,
		Endpoint:   spec.Endpoint,
		Deployment: spec.Deployment,
		Executable: exe,
		CodeDir:    spec.CodeDir,
		ModelDir:   spec.ModelDir,
	}
	// The child is not reaped before reap() runs Wait, so even a process
	// that exited at once still has its /proc entry here.
	if p, err := readProc(in.pid); err == nil {
		rec.StartTime = p.startTime
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	tmp := filepath.Join(in.dir, "record.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(in.dir, "record.json")); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	return nil
}

// recoverGrace is how long a leftover that cannot be re-adopted (its
// leader gone, members of its group still running) gets between SIGTERM and
// SIGKILL.
const recoverGrace = 2 * time.Second

// Recover re-adopts what a previous run of plumbline left running (after a
// graceful stop that kept instances, a crash or kill -9). For each instance
// record in StateDir it is not already running:
//
//   - the recorded leader still runs, and is provably the recorded process
//     (same boot, same PID, same start time — field 22 of /proc/<pid>/stat —
//     same process group): the instance is re-adopted, with its port, log
//     files and template, and returned;
//   - the leader is gone but members of its group remain (a server that
//     died leaving its workers, started after the leader, since a group ID
//     cannot be reused while any member lives): they are ended (SIGTERM,
//     2 s, SIGKILL) and the folder removed;
//   - nothing of it runs, or the record is unreadable: the folder is
//     removed.
//
// A re-adopted instance is not plumbline's child: its logs keep going to
// the files it was started with (the child writes them itself), Stop ends
// its group as usual, but when it exits on its own its exit code is unknown
// (reported as -1). The reconciler stops the re-adopted instances whose
// template it does not want.
func (d *Driver) Recover(ctx context.Context) ([]driver.Status, error) {
	root := filepath.Join(d.cfg.StateDir, "instances")
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	var errs []error
	var adopted []driver.Status
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return adopted, fmt.Errorf("recover: %w", err)
		}
		if !e.IsDir() {
			continue
		}
		d.mu.Lock()
		_, ours := d.instances[e.Name()]
		d.mu.Unlock()
		if ours {
			continue
		}
		dir := filepath.Join(root, e.Name())
		in, err := d.recoverOne(ctx, dir)
		if err != nil {
			errs = append(errs, err)
			continue // keep the record: the next Recover tries again
		}
		if in != nil {
			adopted = append(adopted, in.status())
			continue
		}
		if err := errors.Join(os.RemoveAll(dir), d.removeRWorkerDir(e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("recover: %w", err))
		}
	}
	slices.SortFunc(adopted, func(a, b driver.Status) int { return cmp.Compare(a.ID, b.ID) })
	return adopted, errors.Join(errs...)
}

// recoverOne re-adopts the instance recorded in dir and returns it, or ends
// what is left of it and returns nil (the caller removes dir).
func (d *Driver) recoverOne(ctx context.Context, dir string) (*instance, error) {
	b, err := os.ReadFile(filepath.Join(dir, "record.json"))
	if errors.Is(err, os.ErrNotExist) {
		// Start died before writing it; nothing identifies a process.
		d.log.Warn("recover: instance folder without record, removing it", "dir", dir)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("recover %s: %w", dir, err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil || rec.PGID <= 1 || rec.ID != filepath.Base(dir) {
		d.log.Warn("recover: unreadable record, removing it", "dir", dir, "err", err)
		return nil, nil
	}
	switch d.orphanState(rec) {
	case orphanGone:
		d.log.Info("recover: instance of a previous run already ended", "instance", rec.ID, "pid", rec.PID)
		return nil, nil
	case orphanLeaderRuns:
		if in := d.adopt(rec, dir); in != nil {
			d.log.Info("recover: re-adopted instance left by a previous run", "instance", rec.ID, "pid", rec.PID, "addr", in.addr, "server_pid", rec.ServerPID)
			return in, nil
		}
	}
	d.log.Warn("recover: stopping what is left of an instance of a previous run", "instance", rec.ID, "pid", rec.PID, "server_pid", rec.ServerPID)
	if err := endGroup(ctx, rec.PGID, recoverGrace, nil); err != nil {
		return nil, fmt.Errorf("recover instance %s: %w", rec.ID, err)
	}
	return nil, nil
}

// adopt makes rec's running instance this driver's. It returns nil when
// the record cannot be trusted with an instance (no port, a port already
// given to another instance).
func (d *Driver) adopt(rec record, dir string) *instance {
	addr := rec.Addr
	if addr == "" && rec.Port > 0 {
		addr = net.JoinHostPort(d.cfg.dialHost(), strconv.Itoa(rec.Port))
	}
	if addr == "" {
		return nil
	}
	in := &instance{
		id:        rec.ID,
		dir:       dir,
		port:      rec.Port,
		addr:      addr,
		pid:       rec.PID,
		startedAt: rec.StartedAt,
		template:  rec.Template,
		reaped:    make(chan struct{}),
		removed:   make(chan struct{}),
	}
	d.mu.Lock()
	if _, taken := d.ports[rec.Port]; taken || d.closed {
		d.mu.Unlock()
		return nil
	}
	if _, taken := d.instances[rec.ID]; taken {
		d.mu.Unlock()
		return nil
	}
	d.instances[rec.ID] = in
	d.ports[rec.Port] = rec.ID
	d.mu.Unlock()
	go in.watch(rec.StartTime, d.closing, d.log)
	return in
}

// orphan states, as orphanState finds them.
const (
	orphanGone       = iota // nothing of the instance runs
	orphanLeaderRuns        // the recorded leader itself runs
	orphanGroupRuns         // the leader is gone, members of its group run
)

// orphanState tells whether the processes rec names still run, telling
// them from later processes that reuse the PID.
func (d *Driver) orphanState(rec record) int {
	if rec.BootID != "" && rec.BootID != bootID() {
		return orphanGone // rebooted: every recorded process is gone
	}
	if leader, err := readProc(rec.PID); err == nil {
		if leader.startTime != rec.StartTime || leader.pgrp != rec.PGID {
			return orphanGone // the PID now names another process
		}
		if !leader.zombie() {
			return orphanLeaderRuns
		}
	}
	// The leader is gone (or a zombie nobody reaps). Its group lives on while
	// any member does.
	for _, p := range groupMembers(rec.PGID) {
		if !p.zombie() && p.startTime >= rec.StartTime {
			return orphanGroupRuns
		}
	}
	return orphanGone
}
