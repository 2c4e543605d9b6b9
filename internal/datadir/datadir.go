// Package datadir owns the layout of plumbline's data directory: where the
// database, blobs, TLS material, the admin token and per-instance state live,
// and that all of it is private to the user (0700 folders, 0600 files).
//
// It imports nothing else from plumbline.
package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// EnvDataDir overrides the default data directory.
const EnvDataDir = "PLUMBLINE_DATA_DIR"

// SystemDir is the default data directory of root: where a system
// service keeps its state, and a folder the unprivileged user instances
// run as can enter (root's home cannot be).
const SystemDir = "/var/lib/plumbline"

// Default is the data directory used when --data-dir is not given:
// $PLUMBLINE_DATA_DIR, else $XDG_DATA_HOME/plumbline, else for root
// /var/lib/plumbline (or ~/.local/share/plumbline when an earlier
// plumbline left a data dir there and none is in /var/lib), else
// ~/.local/share/plumbline.
func Default() string {
	if d := os.Getenv(EnvDataDir); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "plumbline")
	}
	home, err := os.UserHomeDir()
	user := ""
	if err == nil && home != "" {
		user = filepath.Join(home, ".local", "share", "plumbline")
	}
	if os.Geteuid() == 0 {
		_, sysErr := os.Stat(SystemDir)
		_, oldErr := os.Stat(filepath.Join(user, "plumbline.db"))
		if user == "" || sysErr == nil || oldErr != nil {
			return SystemDir
		}
	}
	if user == "" {
		return filepath.Join(os.TempDir(), "plumbline")
	}
	return user
}

// Dir is an opened data directory.
type Dir struct {
	// Root is the absolute path of the directory.
	Root string
}

// Open creates the directory (0700) if needed and returns it. An existing
// directory that other users can reach is made 0700 when it is empty or
// already plumbline's; any other such directory (a folder like $HOME, which
// must keep its mode) is refused. Sub-folders are created on first use.
func Open(root string) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("data dir %s: %w", abs, err)
		}
		if err := os.Chmod(abs, 0o700); err != nil { // whatever the umask
			return nil, fmt.Errorf("data dir %s: %w", abs, err)
		}
	case err != nil:
		return nil, fmt.Errorf("data dir %s: %w", abs, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("data dir %s is not a directory", abs)
	case fi.Mode().Perm()&0o067 != 0:
		// Group search alone (0710) is how a server running as root lets
		// the instances' group reach the cache; anything more is too open.
		// An empty folder (just made for plumbline) or one plumbline already
		// uses is tightened; any other folder (say $HOME) keeps its mode and
		// is refused.
		entries, err := os.ReadDir(abs)
		if err != nil {
			return nil, fmt.Errorf("data dir %s: %w", abs, err)
		}
		_, ours := os.Stat(filepath.Join(abs, "plumbline.db"))
		if len(entries) > 0 && ours != nil {
			return nil, fmt.Errorf("data dir %s is open to other users (mode %04o), holds other files, and would hold plumbline's keys: choose a new folder with --data-dir, or run chmod 700 %s", abs, fi.Mode().Perm(), abs)
		}
		if err := os.Chmod(abs, 0o700); err != nil {
			return nil, fmt.Errorf("data dir %s: %w", abs, err)
		}
	}
	return &Dir{Root: abs}, nil
}

// ShareWithGroup lets the group gid enter the data directory (mode 0710,
// that group) without listing or reading it: what instances running as an
// unprivileged user of that group need to reach the cache inside, whose
// own mode decides the rest. Every other entry keeps its private mode.
func (d *Dir) ShareWithGroup(gid int) error {
	if err := os.Chown(d.Root, -1, gid); err != nil {
		return fmt.Errorf("data dir %s: %w", d.Root, err)
	}
	if err := os.Chmod(d.Root, 0o710); err != nil {
		return fmt.Errorf("data dir %s: %w", d.Root, err)
	}
	return nil
}

// MkdirPrivate creates dir and its parents, and makes dir itself 0700.
func MkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm() != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// Sub returns the private sub-folder name, creating it.
func (d *Dir) Sub(name string) (string, error) {
	p := filepath.Join(d.Root, name)
	return p, MkdirPrivate(p)
}

// DBPath is the SQLite database file.
func (d *Dir) DBPath() string { return filepath.Join(d.Root, "plumbline.db") }

// AdminTokenPath is the file holding the control plane's admin token.
func (d *Dir) AdminTokenPath() string { return filepath.Join(d.Root, "admin.token") }

// SecretsKeyPath is the key that encrypts endpoint keys in the store.
func (d *Dir) SecretsKeyPath() string { return filepath.Join(d.Root, "secrets.key") }

// ServerStatePath is where a running server says where it listens.
func (d *Dir) ServerStatePath() string { return filepath.Join(d.Root, "server.json") }

// TLSDir holds the local CA and server certificate.
func (d *Dir) TLSDir() string { return filepath.Join(d.Root, "tls") }

// CACertPath is the local CA certificate clients should trust.
func (d *Dir) CACertPath() string { return filepath.Join(d.TLSDir(), "ca.crt") }

// BlobsDir holds content-addressed blobs.
func (d *Dir) BlobsDir() string { return filepath.Join(d.Root, "blobs") }

// CacheDir holds materialized read-only artifact trees.
func (d *Dir) CacheDir() string { return filepath.Join(d.Root, "cache") }

// InstancesDir holds per-instance driver state and logs.
func (d *Dir) InstancesDir() string { return filepath.Join(d.Root, "instances") }

// ServerState is what `plumbline serve` writes so that the CLI on the same
// machine finds it.
type ServerState struct {
	// URL is the control-plane base URL, e.g. https://127.0.0.1:8443.
	URL string `json:"url"`
	// ScoringURL is the gateway's base URL as clients should call it.
	ScoringURL string    `json:"scoring_url"`
	PID        int       `json:"pid"`
	StartedAt  time.Time `json:"started_at"`
	// CACert is the CA certificate file to trust, when the server uses the
	// local CA.
	CACert string `json:"ca_cert,omitempty"`
	// Insecure is true when the server listens on plain HTTP.
	Insecure bool `json:"insecure,omitempty"`
}

// WriteServerState records where the server listens (0600).
func (d *Dir) WriteServerState(s ServerState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFilePrivate(d.ServerStatePath(), append(b, '\n'))
}

// ReadServerState reads what a server wrote; fs.ErrNotExist if none did.
func (d *Dir) ReadServerState() (ServerState, error) {
	var s ServerState
	b, err := os.ReadFile(d.ServerStatePath())
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", d.ServerStatePath(), err)
	}
	return s, nil
}

// RemoveServerState deletes server.json if it still names pid.
func (d *Dir) RemoveServerState(pid int) {
	s, err := d.ReadServerState()
	if err == nil && s.PID == pid {
		_ = os.Remove(d.ServerStatePath())
	}
}

// WriteFilePrivate writes data to path with mode 0600 atomically (temp file
// and rename), so a reader never sees a half-written file.
func WriteFilePrivate(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(name, path)
}

// IsNotExist reports whether err says a file does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
