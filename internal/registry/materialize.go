package registry

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/plumbline/plumbline/internal/blob"
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

// copyBlob copies the file's blob to w, checking its size.
func (r *Registry) copyBlob(ctx context.Context, w io.Writer, e Entry) error {
	rc, err := r.blobs.Open(e.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(w, io.LimitReader(ctxReader{ctx, rc}, e.Size+1))
	if err != nil {
		return err
	}
	if n != e.Size {
		return fmt.Errorf("blob %s has %d bytes, manifest says %d", e.Digest, n, e.Size)
	}
	return nil
}

// materializing is one Materialize in progress.
type materializing struct {
	done chan struct{}
	dir  string
	err  error
}

// Materialize returns a folder holding the artifact's tree, read-only
// (files 0444, or 0555 when executable; folders 0555), at
// <cacheDir>/<hex digest>. It is built once, in a temporary folder renamed
// into place, so a folder that exists is complete; concurrent calls, in
// this process or others, share or race safely. Non-executable files are
// hard links to their blobs when the cache and the blob store share a
// filesystem, copies otherwise.
func (r *Registry) Materialize(ctx context.Context, digest string) (string, error) {
	if err := blob.CheckDigest(digest); err != nil {
		return "", fmt.Errorf("materialize: %w", err)
	}
	final := filepath.Join(r.cacheDir, digest[len(blob.Prefix):])
	for {
		if fi, err := os.Lstat(final); err == nil && fi.IsDir() {
			return final, nil
		}
		r.mu.Lock()
		c, ok := r.building[digest]
		if !ok {
			c = &materializing{done: make(chan struct{})}
			r.building[digest] = c
			r.mu.Unlock()
			c.dir, c.err = r.build(ctx, digest, final)
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
		// The builder's context may have ended, not ours: then try again.
		if c.err == nil || !(errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)) {
			return c.dir, c.err
		}
	}
}

func (r *Registry) build(ctx context.Context, digest, final string) (string, error) {
	m, err := r.Manifest(ctx, digest)
	if err != nil {
		return "", fmt.Errorf("materialize: %w", err)
	}
	if err := mkdirPrivate(r.cacheDir); err != nil {
		return "", fmt.Errorf("materialize %s: %w", short(digest), err)
	}
	tmp, err := os.MkdirTemp(r.cacheDir, ".build-")
	if err != nil {
		return "", fmt.Errorf("materialize %s: %w", short(digest), err)
	}
	if err := r.populate(ctx, tmp, m); err != nil {
		removeTree(tmp)
		return "", fmt.Errorf("materialize %s: %w", short(digest), err)
	}
	if err := os.Rename(tmp, final); err != nil {
		removeTree(tmp)
		if fi, serr := os.Lstat(final); serr == nil && fi.IsDir() {
			return final, nil // another process finished first
		}
		return "", fmt.Errorf("materialize %s: %w", short(digest), err)
	}
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
				return err
			}
			dirs = append(dirs, e.Path)
		case TypeSymlink:
			if err := root.Symlink(e.Target, e.Path); err != nil {
				return err
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
// blob is 0444 already), and copies otherwise.
func (r *Registry) placeFile(ctx context.Context, root *os.Root, dir string, e Entry) error {
	src := r.blobs.Path(e.Digest)
	fi, err := os.Stat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", e.Digest, blob.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if fi.Size() != e.Size {
		return fmt.Errorf("blob %s has %d bytes, manifest says %d", e.Digest, fi.Size(), e.Size)
	}
	if !e.Executable() && fi.Mode().Perm() == 0o444 {
		// e.Path is clean and its parents are folders just created, so the
		// joined path cannot leave dir.
		if err := os.Link(src, filepath.Join(dir, filepath.FromSlash(e.Path))); err == nil {
			return nil
		}
	}
	f, err := root.OpenFile(e.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := r.copyBlob(ctx, f, e); err != nil {
		f.Close()
		return err
	}
	// The tree becomes visible by rename: its contents must be on disk first.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
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
	if err := removeTree(filepath.Join(r.cacheDir, digest[len(blob.Prefix):])); err != nil {
		return fmt.Errorf("evict %s: %w", short(digest), err)
	}
	return nil
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
