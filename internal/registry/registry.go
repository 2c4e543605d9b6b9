// Package registry owns plumbline's artifacts and model versions.
//
// An artifact is an immutable tree of files (a model folder, a code
// snapshot). Its identity is the sha256 digest of its manifest: the sorted
// list of entries (path, type, mode reduced to 0644/0755, size, file blob
// digest, symlink target) in canonical JSON, itself stored as a blob. The
// same content therefore has the same digest wherever and whenever it is
// uploaded, and a deployment that pins a digest runs exactly those bytes.
//
// Server side, Ingest reads an uploaded tar (plain or gzip) as it streams,
// refusing anything that could write outside the tree; WriteTar streams an
// artifact back; Materialize gives a read-only folder for drivers. Client
// side (the CLI), WriteTar, LocalDigest and ExtractTar pack, hash and unpack
// local folders under the same rules. Models are versions over store.Store
// that point at an artifact digest.
//
// This package may import store and blob; it must not import the API
// server, the reconciler, drivers or the gateway.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/store"
)

// Default limits.
const (
	DefaultMaxBytes int64 = 4 << 30
	DefaultMaxFiles       = 10_000
)

// Limits bound what one archive may hold.
type Limits struct {
	// MaxBytes is the total size of the files (uncompressed). Zero means
	// DefaultMaxBytes; negative means no limit.
	MaxBytes int64
	// MaxFiles is the number of entries (files, folders and links). Zero
	// means DefaultMaxFiles; negative means no limit.
	MaxFiles int
}

// or fills l's zero fields from d, then from the defaults.
func (l Limits) or(d Limits) Limits {
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	return l
}

var (
	// ErrUnsafeEntry: an archive entry could write outside the tree or is of a
	// kind an artifact cannot hold (device, fifo, duplicate…).
	ErrUnsafeEntry = errors.New("unsafe archive entry")
	// ErrTooLarge: an archive goes over Limits.
	ErrTooLarge = errors.New("archive too large")
	// ErrBadArchive: the stream is not a readable tar (or tar.gz).
	ErrBadArchive = errors.New("invalid archive")
	// ErrArtifactNotFound: no artifact has that digest.
	ErrArtifactNotFound = errors.New("artifact not found")
	// ErrInvalid: a model name, version or label is malformed.
	ErrInvalid = errors.New("invalid model reference")
)

// EntryError names the archive entry (or local file) that was refused. It
// wraps ErrUnsafeEntry or ErrTooLarge.
type EntryError struct {
	Entry  string // the name as it appears in the archive
	Reason string
	Err    error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("archive entry %q: %s", e.Entry, e.Reason)
}

func (e *EntryError) Unwrap() error { return e.Err }

// Artifact summarises an ingested artifact.
type Artifact struct {
	Digest string
	Files  int
	Size   int64
	// Root is the single top-level name when there is exactly one
	// ("models", "crate.bin"), else "".
	Root string
}

func summary(digest string, m Manifest) Artifact {
	return Artifact{Digest: digest, Files: m.Files(), Size: m.Size(), Root: m.Root()}
}

// Registry stores artifacts in a blob store and model versions in a Store.
// It is safe for concurrent use.
type Registry struct {
	st       store.Store
	blobs    *blob.FS
	cacheDir string
	lim      Limits

	mu       sync.Mutex                // protects building
	building map[string]*materializing // by digest: the one Materialize or Evict at work on it

	stampMu sync.Mutex            // protects stamps
	stamps  map[string]blob.Stamp // by cache file path: its stamp when its bytes last hashed right

	logger *slog.Logger // nil: slog.Default()

	// cacheGID, when >= 0, is the group allowed to enter the cache folder
	// (0710): the group instances run as, so they reach their trees.
	cacheGID int
}

// New returns a registry. cacheDir holds materialized trees; it is created
// (0700) on first use. Zero fields of lim take the defaults.
func New(st store.Store, blobs *blob.FS, cacheDir string, lim Limits) *Registry {
	return &Registry{st: st, blobs: blobs, cacheDir: cacheDir, lim: lim.or(Limits{}),
		building: map[string]*materializing{}, stamps: map[string]blob.Stamp{}, cacheGID: -1}
}

// ShareCache lets the group gid enter the cache folder (mode 0710, that
// group): instances running as an unprivileged user of that group then
// reach the read-only trees built there (0555 folders, 0444 files), and
// nothing else of the data dir. Call it before the first Materialize.
func (r *Registry) ShareCache(gid int) error {
	r.cacheGID = gid
	return r.ensureCacheDir()
}

// ensureCacheDir creates the cache folder with its mode: 0700, or 0710
// for the shared group.
func (r *Registry) ensureCacheDir() error {
	if r.cacheGID < 0 {
		return mkdirPrivate(r.cacheDir)
	}
	if err := os.MkdirAll(r.cacheDir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(r.cacheDir, -1, r.cacheGID); err != nil {
		return err
	}
	return os.Chmod(r.cacheDir, 0o710)
}

// SetLogger sets where the registry reports what it repairs on its own (a
// damaged cache tree rebuilt). Without it, slog.Default().
func (r *Registry) SetLogger(l *slog.Logger) { r.logger = l }

func (r *Registry) log() *slog.Logger {
	if r.logger != nil {
		return r.logger
	}
	return slog.Default()
}

// Blobs is the registry's blob store.
func (r *Registry) Blobs() *blob.FS { return r.blobs }

// Model types.
const (
	TypeCustomModel = "custom_model"
	TypeMLflowModel = "mlflow_model"
	TypeTritonModel = "triton_model"
)

// LabelLatest names the newest version that is not archived.
const LabelLatest = "latest"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$`)

func checkName(what, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("model %s %q: use 1-255 letters, digits, '-', '_' or '.', starting with a letter or digit: %w",
			what, s, ErrInvalid)
	}
	return nil
}

// CreateModel registers m, whose Digest must be an ingested artifact. The
// name is kept in lower case (see ModelName). Size,
// FileCount and PathBase come from the artifact; Type defaults to
// custom_model; an empty Version gets the next integer. Registering the
// same name and version with the same content again returns the stored
// version with created false; with other content it fails with an error
// wrapping store.ErrConflict that says how to fix it.
func (r *Registry) CreateModel(ctx context.Context, m store.ModelVersion) (_ store.ModelVersion, created bool, _ error) {
	if err := checkName("name", m.Name); err != nil {
		return m, false, err
	}
	m.Name = ModelName(m.Name)
	if m.Version != "" {
		if err := checkName("version", m.Version); err != nil {
			return m, false, err
		}
		if m.Version == LabelLatest {
			return m, false, fmt.Errorf("model version %q is reserved for the label; pick another: %w", m.Version, ErrInvalid)
		}
	}
	man, err := r.Manifest(ctx, m.Digest)
	if err != nil {
		return m, false, fmt.Errorf("model %s: %w", m.Name, err)
	}
	m.Size, m.FileCount, m.PathBase = man.Size(), man.Files(), man.Root()
	if m.Type == "" {
		m.Type = TypeCustomModel
	}
	if m.Version != "" {
		old, err := r.st.GetModelVersion(ctx, m.Name, m.Version)
		switch {
		case err == nil && old.Digest == m.Digest:
			return old, false, nil
		case err == nil:
			return m, false, conflict(old, m)
		case !errors.Is(err, store.ErrNotFound):
			return m, false, err
		}
	}
	got, err := r.st.CreateModelVersion(ctx, m)
	if errors.Is(err, store.ErrConflict) { // lost a race with another create
		if old, gerr := r.st.GetModelVersion(ctx, m.Name, m.Version); gerr == nil {
			return m, false, conflict(old, m)
		}
	}
	if err != nil {
		return m, false, err
	}
	return got, true, nil
}

func conflict(old, m store.ModelVersion) error {
	return fmt.Errorf("model %s version %s already exists with different content (%s ≠ %s); register it as a new version or omit --version: %w",
		m.Name, m.Version, short(old.Digest), short(m.Digest), store.ErrConflict)
}

// short abbreviates a digest for messages: "sha256:ab12cd34ef56…".
func short(d string) string {
	if len(d) > len(blob.Prefix)+12 {
		return d[:len(blob.Prefix)+12] + "…"
	}
	return d
}

// ModelName is the form a model name is kept in: model names are
// case-insensitive, as endpoint and deployment names are, and plumbline
// keeps them in lower case everywhere (store, deployments, API answers), so
// iris-crate and IRIS-Crate are one model.
func ModelName(name string) string { return strings.ToLower(name) }

// ResolveModel returns the version named by versionOrLabel: a version, or
// the label "latest" (the newest version that is not archived). An archived
// version can still be resolved by its version. The name is
// case-insensitive.
func (r *Registry) ResolveModel(ctx context.Context, name, versionOrLabel string) (store.ModelVersion, error) {
	name = ModelName(name)
	switch versionOrLabel {
	case "":
		return store.ModelVersion{}, fmt.Errorf("model %s: give a version (name:1) or the label latest (name@latest): %w", name, ErrInvalid)
	case LabelLatest:
		return r.st.LatestModelVersion(ctx, name)
	}
	return r.st.GetModelVersion(ctx, name, versionOrLabel)
}

// ModelArtifactTree resolves a model version (or label) and materializes
// its artifact; the model's files are under dir/<PathBase>.
func (r *Registry) ModelArtifactTree(ctx context.Context, name, versionOrLabel string) (store.ModelVersion, string, error) {
	m, err := r.ResolveModel(ctx, name, versionOrLabel)
	if err != nil {
		return m, "", err
	}
	dir, err := r.Materialize(ctx, m.Digest)
	if err != nil {
		return m, "", fmt.Errorf("model %s:%s: %w", m.Name, m.Version, err)
	}
	return m, dir, nil
}
