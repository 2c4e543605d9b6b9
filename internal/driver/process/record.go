package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	StartedAt time.Time `json:"started_at"`
	ServerPID int       `json:"server_pid"` // the plumbline process that started it

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
		StartedAt:  in.startedAt,
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

// recoverGrace is how long an orphan of a previous run gets between SIGTERM
// and SIGKILL.
const recoverGrace = 2 * time.Second

// Recover ends what a previous run of plumbline left behind (after a crash
// or kill -9): for each instance record in StateDir whose process still
// runs, it stops the process group (SIGTERM, 2s, SIGKILL), then deletes the
// record and the instance's logs. Instances this driver started are left
// alone.
//
// It re-adopts nothing and always returns no instances. An orphan could be
// adopted (its pid, port and log file are known), but whatever watched it
// died with the old server: its probes, its gateway routes, the reconciler's
// view of which spec it runs. Killing orphans and letting the reconciler
// start fresh instances from the store is simpler and cannot leave a
// half-known process serving; the cost is one cold start per instance.
//
// A process is ended only when it is the one recorded: same boot, same PID,
// same start time (field 22 of /proc/<pid>/stat), same process group. When
// the recorded leader is gone but members of its group remain (a server
// that died leaving its workers), those members are ended too, provided
// they started after the leader: the group ID cannot be reused while any of
// them lives.
func (d *Driver) Recover(ctx context.Context) ([]driver.Status, error) {
	root := filepath.Join(d.cfg.StateDir, "instances")
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("recover: %w", err)
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
		if err := d.recoverOne(ctx, dir); err != nil {
			errs = append(errs, err)
			continue // keep the record: the next Recover tries again
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("recover: %w", err))
		}
	}
	return nil, errors.Join(errs...)
}

// recoverOne ends the processes recorded in dir, if they still run.
func (d *Driver) recoverOne(ctx context.Context, dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "record.json"))
	if errors.Is(err, os.ErrNotExist) {
		// Start died before writing it; nothing identifies a process.
		d.log.Warn("recover: instance folder without record, removing it", "dir", dir)
		return nil
	}
	if err != nil {
		return fmt.Errorf("recover %s: %w", dir, err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil || rec.PGID <= 1 {
		d.log.Warn("recover: unreadable record, removing it", "dir", dir, "err", err)
		return nil
	}
	if !d.orphanRuns(rec) {
		d.log.Info("recover: instance of a previous run already ended", "instance", rec.ID, "pid", rec.PID)
		return nil
	}
	d.log.Warn("recover: stopping instance left by a previous run", "instance", rec.ID, "pid", rec.PID, "server_pid", rec.ServerPID)
	if err := endGroup(ctx, rec.PGID, recoverGrace, nil); err != nil {
		return fmt.Errorf("recover instance %s: %w", rec.ID, err)
	}
	return nil
}

// orphanRuns reports whether the processes rec names still run, telling
// them from later processes that reuse the PID.
func (d *Driver) orphanRuns(rec record) bool {
	if rec.BootID != "" && rec.BootID != bootID() {
		return false // rebooted: every recorded process is gone
	}
	if leader, err := readProc(rec.PID); err == nil {
		if leader.startTime != rec.StartTime || leader.pgrp != rec.PGID {
			return false // the PID now names another process
		}
		if !leader.zombie() {
			return true
		}
	}
	// The leader is gone (or a zombie nobody reaps). Its group lives on while
	// any member does.
	for _, p := range groupMembers(rec.PGID) {
		if !p.zombie() && p.startTime >= rec.StartTime {
			return true
		}
	}
	return false
}
