package process

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// DefaultInstanceUser is the system user instances run as when the server
// runs as root (InstanceUser creates it if it does not exist).
const DefaultInstanceUser = "plumbline-instance"

// RunAs is the unprivileged user instances run as when the server runs as
// root: scoring code then cannot read what only root may (the data dir's
// CA key, admin token, secrets key, database, blobs and instance records),
// nor signal or trace the server.
type RunAs struct {
	Name string
	UID  uint32
	GID  uint32
	// Home is the user's home folder (HOME, as login would set it).
	Home string
}

// InstanceUser returns the user called name (DefaultInstanceUser when
// empty), creating it as a system user with its own group, no home and no
// login shell when it does not exist and create is set (useradd; the
// server must be root). It refuses root and users of uid 0.
func InstanceUser(name string, create bool) (*RunAs, error) {
	if name == "" {
		name = DefaultInstanceUser
	}
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) && create {
		out, cerr := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
			"--comment", "plumbline scoring instances", name).CombinedOutput()
		if cerr != nil {
			return nil, fmt.Errorf("create the user instances run as (useradd %s): %v: %s; create it yourself or choose one with --instance-user", name, cerr, out)
		}
		u, err = user.Lookup(name)
	}
	if err != nil {
		return nil, fmt.Errorf("instance user %s: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("instance user %s: uid %q gid %q are not numbers", name, u.Uid, u.Gid)
	}
	if uid == 0 || gid == 0 {
		return nil, fmt.Errorf("instance user %s has uid %d, gid %d: instances need an unprivileged user and group (not 0)", name, uid, gid)
	}
	return &RunAs{Name: name, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}, nil
}

// credential is how spawn switches to the user: its uid and gid, no
// supplementary groups (root's must not leak).
func (r *RunAs) credential() *syscall.Credential {
	return &syscall.Credential{Uid: r.UID, Gid: r.GID, Groups: []uint32{}, NoSetGroups: false}
}

// CanReach reports whether the user can open p: every folder on the way
// searchable (x) and p itself readable, for it as owner, through its group
// or as anyone. Access control lists are not consulted: a folder they open
// and modes do not is reported unreachable.
func (r *RunAs) CanReach(p string) error { return r.canReach(p, false) }

// CanEnter reports whether the user can search every folder down to dir
// and dir itself (reach what is inside by name, without listing it).
func (r *RunAs) CanEnter(dir string) error { return r.canReach(dir, true) }

func (r *RunAs) canReach(p string, enterOnly bool) error {
	abs, err := filepath.Abs(p)
	if err != nil {
		return err
	}
	var chain []string
	for d := abs; ; d = filepath.Dir(d) {
		chain = append(chain, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		fi, err := os.Stat(chain[i])
		if err != nil {
			return err
		}
		need := fs.FileMode(0o1) // search
		if i == 0 && !enterOnly {
			need = 0o4 // read
			if fi.IsDir() {
				need = 0o5
			}
		}
		if !r.allowed(fi, need) {
			return fmt.Errorf("user %s cannot %s %s (mode %v, owner %d:%d)", r.Name, verb(i == 0 && !enterOnly), chain[i], fi.Mode().Perm(), owner(fi), group(fi))
		}
	}
	return nil
}

func verb(last bool) string {
	if last {
		return "read"
	}
	return "enter"
}

func (r *RunAs) allowed(fi fs.FileInfo, need fs.FileMode) bool {
	perm := fi.Mode().Perm()
	switch {
	case owner(fi) == r.UID:
		return (perm>>6)&need == need
	case group(fi) == r.GID:
		return (perm>>3)&need == need
	}
	return perm&need == need
}

func owner(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return ^uint32(0)
}

func group(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Gid
	}
	return ^uint32(0)
}
