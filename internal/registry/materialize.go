package registry

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/plumbline/plumbline/internal/blob"
)

// Prefixes of the cache's temporary folders: trees being built and trees
// being removed. Both are leftovers after a crash; RemovePartial removes
// them.
const (
	buildPrefix = ".build-"
	evictPrefix = ".evict-"
)

// epoch is the modification time of every entry of the tars this package
// writes, so that the same tree always gives the same bytes.
var epoch = time.Unix(0, 0).UTC()

// tarHeader is the deterministic header of an entry.
func tarHeader(e Entry) *tar.Header {
	h := &tar.Header{Name: e.Path, Mode: int64(fileMode(e)), ModTime: epoch, Format: tar.FormatPAX}
	switch e.Type {
	case TypeDir:
		h.Typeflag, h.Name = tar.TypeDir, e.Path+"/"
	case TypeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.Target
	default:
		h.Typeflag, h.Size = tar.TypeReg, e.Size
	}
	return h
}

// WriteTar writes the artifact as a plain tar: entries in manifest order,
// fixed times and owners, the files' bytes exactly as uploaded.
func (r *Registry) WriteTar(ctx context.Context, digest string, w io.Writer) error {
	m, err := r.Manifest(ctx, digest)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, e := range m.Entries {
		if err := tw.WriteHeader(tarHeader(e)); err != nil {
			return fmt.Errorf("write tar %s: %s: %w", short(digest), e.Path, err)
		}
		if e.Type != TypeFile {
			continue
		}
		if err := r.copyBlob(ctx, tw, e); err != nil {
			return fmt.Errorf("write tar %s: %s: %w", short(digest), e.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write tar %s: %w", short(digest), err)
	}
	return nil
}

// copyBlob copies the file's blob to w, checking its size and its hash: a
// blob whose bytes are wrong fails with a *blob.CorruptError once its bytes
// have been read (a reader of a tar sees the stream end with an error).
func (r *Registry) copyBlob(ctx context.Context, w io.Writer, e Entry) error {
	rc, err := r.blobs.Open(e.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(ctxReader{ctx, rc}, e.Size+1))
	if err != nil {
		return blob.NoSpace(err)
	}
	if got := blob.Prefix + hex.EncodeToString(h.Sum(nil)); n != e.Size || got != e.Digest {
		return &blob.CorruptError{Digest: e.Digest, Path: r.blobs.Path(e.Digest), Got: got}
	}
	return nil
}

// materializing is one Materialize (or eviction) in progress.
type materializing struct {
	done chan struct{}
	dir  string
	err  error
}

// Materialize returns a folder holding the artifact's tree, read-only
// (files 0444, or 0555 when executable; folders 0555), at
// <cacheDir>/<hex digest>. The cache is keyed by digest and checked against
// it: a tree that exists is verified first (its entries against the
// manifest, each file's bytes against its digest, re-hashed only when the
// file changed since it was last verified, as blob.FS.Check does) and, when
// anything differs, evicted and built again. A tree is built in a
// temporary folder renamed into place, from blobs verified as they are
// placed: a corrupt blob fails with an error wrapping blob.ErrCorrupt that
// names it. Concurrent calls for one digest share the work. Non-executable
// files are hard links to their blobs when the cache and the blob store
// share a filesystem, copies otherwise.
func (r *Registry) Materialize(ctx context.Context, digest string) (string, error) {
	if err := blob.CheckDigest(digest); err != nil {
		return "", fmt.Errorf("materialize: %w", err)
	}
	final := filepath.Join(r.cacheDir, digest[len(blob.Prefix):])
	return r.exclusive(ctx, digest, func() (string, error) { return r.materialize(ctx, digest, final) })
}

// exclusive runs fn as the only work on digest's cache entry in this
// registry; a caller that finds work in progress waits for it and shares its
// result (trying again when the worker's context, not its own, ended).
func (r *Registry) exclusive(ctx context.Context, digest string, fn func() (string, error)) (string, error) {
	for {
		r.mu.Lock()
		c, ok := r.building[digest]
		if !ok {
			c = &materializing{done: make(chan struct{})}
			r.building[digest] = c
			r.mu.Unlock()
			c.dir, c.err = fn()
			r.mu.Lock()
			delete(r.building, digest)
			r.mu.Unlock()
			close(c.done)
			return c.dir, c.err
		}
		r.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return "", fmt.Errorf("materialize %s: %w", short(digest), ctx.Err())
		}
		if c.err == nil || !(errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)) {
			return c.dir, c.err
		}
	}
}

func (r *Registry) materialize(ctx context.Context, digest, final string) (string, error) {
	m, err := r.Manifest(ctx, digest)
	if err != nil {
		return "", fmt.Errorf("materialize: %w", err)
	}
	if _, err := os.Lstat(final); err == nil {
		verr := r.verifyTree(ctx, final, m)
		if verr == nil {
			// Used now: a garbage collection with a minimum age keeps it.
			if fi, err := os.Stat(final); err == nil && time.Since(fi.ModTime()) > time.Minute {
				now := time.Now()
				os.Chtimes(final, now, now)
			}
			return final, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("materialize %s: %w", short(digest), ctx.Err())
		}
		r.log().Warn("cached artifact tree differs from its digest; rebuilding it from the blob store",
			"artifact", digest, "dir", final, "problem", verr.Error())
		if err := r.evictDir(final); err != nil {
			return "", fmt.Errorf("materialize %s: evict the damaged tree: %w", short(digest), err)
		}
	}
	return r.build(ctx, digest, final, m)
}

// TreeError says how a materialized tree differs from its manifest.
type TreeError struct {
	Dir     string
	Path    string // the entry, relative to Dir; "" for the tree itself
	Problem string
}

func (e *TreeError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("cached tree %s: %s", e.Dir, e.Problem)
	}
	return fmt.Sprintf("cached tree %s: %s: %s", e.Dir, e.Path, e.Problem)
}

// verifyTree checks that dir holds exactly m's entries with the modes
// Materialize gives them, and that every file's bytes hash to its digest
// (re-hashing only files whose stamp changed since they were verified).
func (r *Registry) verifyTree(ctx context.Context, dir string, m Manifest) error {
	bad := func(p, format string, args ...any) error {
		return &TreeError{Dir: dir, Path: p, Problem: fmt.Sprintf(format, args...)}
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return bad("", "%v", err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o555 {
		return bad("", "not a read-only folder (%v)", fi.Mode())
	}
	want := make(map[string]Entry, len(m.Entries))
	for _, e := range m.Entries {
		want[e.Path] = e
	}
	seen := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel := filepath.ToSlash(p[len(dir)+1:])
		e, ok := want[rel]
		if !ok {
			return bad(rel, "not in the artifact")
		}
		seen++
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch e.Type {
		case TypeDir:
			if !fi.IsDir() || fi.Mode().Perm() != 0o555 {
				return bad(rel, "want a read-only folder, found %v", fi.Mode())
			}
		case TypeSymlink:
			target, err := os.Readlink(p)
			if fi.Mode()&fs.ModeSymlink == 0 || err != nil || target != e.Target {
				return bad(rel, "want a symlink to %q, found %v %q", e.Target, fi.Mode(), target)
			}
		case TypeFile:
			mode := fs.FileMode(0o444)
			if e.Executable() {
				mode = 0o555
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode || fi.Size() != e.Size {
				return bad(rel, "want a %d-byte file of mode %v, found %v of %d bytes", e.Size, mode, fi.Mode(), fi.Size())
			}
			if r.stampOK(p, fi) || r.blobs.Verified(e.Digest, fi) {
				return nil
			}
			got, err := blob.HashFile(ctx, p)
			if err != nil {
				return err
			}
			if got != e.Digest {
				return bad(rel, "bytes hash to %s, the artifact says %s", got, e.Digest)
			}
			r.rememberStamp(p, fi)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if seen != len(m.Entries) {
		return bad("", "%d of the artifact's %d entries are missing", len(m.Entries)-seen, len(m.Entries))
	}
	return nil
}

// stampOK reports whether the file at p was verified with this stamp.
func (r *Registry) stampOK(p string, fi fs.FileInfo) bool {
	r.stampMu.Lock()
	defer r.stampMu.Unlock()
	st, ok := r.stamps[p]
	return ok && st == blob.StampOf(fi)
}

func (r *Registry) rememberStamp(p string, fi fs.FileInfo) {
	r.stampMu.Lock()
	r.stamps[p] = blob.StampOf(fi)
	r.stampMu.Unlock()
}

// forgetStamps drops the stamps of every file under dir.
func (r *Registry) forgetStamps(dir string) {
	r.stampMu.Lock()
	defer r.stampMu.Unlock()
	prefix := dir + string(filepath.Separator)
	for p := range r.stamps {
		if strings.HasPrefix(p, prefix) {
			delete(r.stamps, p)
		}
	}
}

func (r *Registry) build(ctx context.Context, digest, final string, m Manifest) (string, error) {
	if err := r.ensureCacheDir(); err != nil {
		return "", fmt.Errorf("materialize %s: %w", short(digest), err)
	}
	tmp, err := os.MkdirTemp(r.cacheDir, buildPrefix)
	if err != nil {
		return "", fmt.Errorf("materialize %s: %w", short(digest), blob.NoSpace(err))
	}
	if err := r.populate(ctx, tmp, m); err != nil {
		removeTree(tmp)
		return "", fmt.Errorf("materialize %s: %w", short(digest), err)
	}
	if err := os.Rename(tmp, final); err != nil {
		removeTree(tmp)
		if _, serr := os.Lstat(final); serr == nil && r.verifyTree(ctx, final, m) == nil {
			return final, nil // another process sharing the cache finished first
		}
		return "", fmt.Errorf("materialize %s: %w", short(digest), err)
	}
	// What was just placed was verified: remember it under its final path.
	r.forgetStamps(final)
	filepath.WalkDir(final, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				r.rememberStamp(p, fi)
			}
		}
		return nil
	})
	return final, nil
}

// populate writes m's tree into dir and makes it read-only.
func (r *Registry) populate(ctx context.Context, dir string, m Manifest) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	var dirs []string
	for _, e := range m.Entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch e.Type {
		case TypeDir:
			if err := root.Mkdir(e.Path, 0o700); err != nil {
				return blob.NoSpace(err)
			}
			dirs = append(dirs, e.Path)
		case TypeSymlink:
			if err := root.Symlink(e.Target, e.Path); err != nil {
				return blob.NoSpace(err)
			}
		case TypeFile:
			if err := r.placeFile(ctx, root, dir, e); err != nil {
				return fmt.Errorf("%s: %w", e.Path, err)
			}
		}
	}
	slices.Reverse(dirs) // children before parents
	for _, d := range append(dirs, ".") {
		if err := root.Chmod(d, 0o555); err != nil {
			return err
		}
	}
	return nil
}

// placeFile hard-links a plain file's blob into the tree when it can (the
// blob is 0444 already), and copies otherwise; either way the blob's bytes
// are checked against its digest first.
func (r *Registry) placeFile(ctx context.Context, root *os.Root, dir string, e Entry) error {
	if !e.Executable() {
		if err := r.blobs.Check(ctx, e.Digest); err != nil {
			return err
		}
		src := r.blobs.Path(e.Digest)
		if fi, err := os.Stat(src); err == nil && fi.Mode().Perm() == 0o444 {
			// e.Path is clean and its parents are folders just created, so
			// the joined path cannot leave dir.
			if err := os.Link(src, filepath.Join(dir, filepath.FromSlash(e.Path))); err == nil {
				return nil
			}
		}
	}
	f, err := root.OpenFile(e.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return blob.NoSpace(err)
	}
	if err := r.copyBlob(ctx, f, e); err != nil {
		f.Close()
		return err
	}
	// The tree becomes visible by rename: its contents must be on disk first.
	if err := f.Sync(); err != nil {
		f.Close()
		return blob.NoSpace(err)
	}
	if err := f.Close(); err != nil {
		return blob.NoSpace(err)
	}
	mode := fs.FileMode(0o444)
	if e.Executable() {
		mode = 0o555
	}
	return root.Chmod(e.Path, mode)
}

// Evict removes a materialized tree (a later Materialize rebuilds it). It
// is not an error if there is none. The caller must know no instance uses it.
func (r *Registry) Evict(digest string) error {
	if err := blob.CheckDigest(digest); err != nil {
		return fmt.Errorf("evict: %w", err)
	}
	_, err := r.exclusive(context.Background(), digest, func() (string, error) {
		return "", r.evictDir(filepath.Join(r.cacheDir, digest[len(blob.Prefix):]))
	})
	if err != nil {
		return fmt.Errorf("evict %s: %w", short(digest), err)
	}
	return nil
}

// evictDir moves a cached tree out of the way in one rename (so no caller
// ever sees half of it) and removes it.
func (r *Registry) evictDir(dir string) error {
	r.forgetStamps(dir)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	tmp, err := os.MkdirTemp(r.cacheDir, evictPrefix)
	if err != nil {
		return removeTree(dir)
	}
	aside := filepath.Join(tmp, "tree")
	if err := os.Rename(dir, aside); err != nil {
		os.Remove(tmp)
		return removeTree(dir)
	}
	return removeTree(tmp)
}

// removeTree removes a read-only tree: folders are made writable first
// (files need not be, and hard-linked ones must keep the blob's mode).
func removeTree(dir string) error {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

func mkdirPrivate(dir string) error {
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
