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
	"path"
	"path/filepath"
	"strings"

	"github.com/plumbline/plumbline/internal/blob"
)

// Client-side helpers: what the CLI uses to pack, hash and unpack local
// files under the same rules as the server.

// localTree is a scanned local file or folder: the tree as Ingest would
// record it (file digests still empty) and where each file lives.
type localTree struct {
	t     *tree
	files map[string]string // tree path → local path
	total int64
}

// scanLocal walks path (a file or a folder; a symlink given as path is
// followed) and records its entries under filepath.Base(path).
func scanLocal(ctx context.Context, p string) (*localTree, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(abs)
	if base == string(filepath.Separator) || base == "." || base == "" {
		return nil, fmt.Errorf("%s: cannot pack the filesystem root; give a folder or a file", p)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	lt := &localTree{t: newTree(Limits{MaxBytes: -1, MaxFiles: -1}), files: map[string]string{}}
	// Errors name the entry as the user sees it, relative to their path.
	named := func(rel string, err error) error {
		if err == nil {
			return nil
		}
		var ee *EntryError
		if errors.As(err, &ee) {
			ee.Entry = rel
			return ee
		}
		return fmt.Errorf("%s: %w", rel, err)
	}
	if !fi.IsDir() {
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file or folder", p)
		}
		if err := lt.t.addFile(base, fi.Mode()&0o111 != 0, fi.Size(), ""); err != nil {
			return nil, named(base, err)
		}
		lt.files[base], lt.total = abs, fi.Size()
		return lt, nil
	}
	if err := lt.t.addDir(base); err != nil {
		return nil, named(base, err)
	}
	top, err := filepath.EvalSymlinks(abs) // WalkDir does not follow a symlinked root
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(top, func(fp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if fp == top {
			return nil
		}
		rel, err := filepath.Rel(top, fp)
		if err != nil {
			return err
		}
		tp := path.Join(base, filepath.ToSlash(rel))
		shown := filepath.Join(base, rel)
		switch typ := d.Type(); {
		case typ.IsDir():
			return named(shown, lt.t.addDir(tp))
		case typ&fs.ModeSymlink != 0:
			target, err := os.Readlink(fp)
			if err != nil {
				return err
			}
			err = lt.t.addSymlink(tp, filepath.ToSlash(target))
			if errors.Is(err, errEscapes) {
				return linkErr(shown, target)
			}
			return named(shown, err)
		case typ.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			if err := lt.t.addFile(tp, info.Mode()&0o111 != 0, info.Size(), ""); err != nil {
				return named(shown, err)
			}
			lt.files[tp] = fp
			lt.total += info.Size()
			return nil
		}
		return named(shown, fmt.Errorf("not a regular file, folder or symlink (%v); remove it or move it out of the folder", d.Type()))
	})
	if err != nil {
		return nil, err
	}
	if err := lt.t.checkLinks(base); err != nil {
		var ee *EntryError
		if errors.As(err, &ee) && errors.Is(err, errEscapes) {
			target := lt.t.entries[ee.Entry].Target
			return nil, linkErr(filepath.FromSlash(ee.Entry), target)
		}
		return nil, err
	}
	return lt, nil
}

func linkErr(name, target string) error {
	return &EntryError{Entry: name, Err: ErrUnsafeEntry, Reason: fmt.Sprintf(
		"symlink to %q leaves the folder; only relative links that stay inside it are kept (copy the target in instead)", target)}
}

// LocalDigest computes the artifact digest that Ingest would give the tar
// of path, without writing anything, so the CLI can ask the server (Has)
// whether an upload is needed.
func LocalDigest(p string) (string, error) {
	return localDigest(context.Background(), p)
}

func localDigest(ctx context.Context, p string) (string, error) {
	lt, err := scanLocal(ctx, p)
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", p, err)
	}
	for tp, fp := range lt.files {
		d, n, err := hashFile(ctx, fp)
		if err != nil {
			return "", fmt.Errorf("digest %s: %w", p, err)
		}
		e := lt.t.entries[tp]
		if n != e.Size {
			return "", fmt.Errorf("digest %s: %s changed while being read", p, fp)
		}
		e.Digest = d
	}
	_, digest, err := lt.t.manifest().encode()
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", p, err)
	}
	return digest, nil
}

func hashFile(ctx context.Context, p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		return "", 0, err
	}
	return blob.Prefix + hex.EncodeToString(h.Sum(nil)), n, nil
}

// WriteTar writes a plain tar of the local file or folder at p, entries
// named under filepath.Base(p) ("./models" → "models/…", "crate.bin" →
// "crate.bin"), sorted, with fixed times and owners, so the same content
// always gives the same tar. Symlinks that stay inside the folder are kept;
// one that leaves it is an error naming it. progress, if not nil, is called
// as file bytes are written, with the total known up front.
func WriteTar(ctx context.Context, w io.Writer, p string, progress func(done, total int64)) error {
	lt, err := scanLocal(ctx, p)
	if err != nil {
		return fmt.Errorf("pack %s: %w", p, err)
	}
	tw := tar.NewWriter(w)
	pw := &progressWriter{w: tw, total: lt.total, fn: progress}
	if progress != nil {
		progress(0, lt.total)
	}
	for _, e := range lt.t.manifest().Entries {
		if err := tw.WriteHeader(tarHeader(e)); err != nil {
			return fmt.Errorf("pack %s: %s: %w", p, e.Path, err)
		}
		if e.Type != TypeFile {
			continue
		}
		if err := copyLocal(ctx, pw, lt.files[e.Path], e.Size); err != nil {
			return fmt.Errorf("pack %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", p, err)
	}
	return nil
}

func copyLocal(ctx context.Context, w io.Writer, fp string, size int64) error {
	f, err := os.Open(fp)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(ctxReader{ctx, f}, size))
	if err != nil {
		return fmt.Errorf("%s: %w", fp, err)
	}
	if n != size {
		return fmt.Errorf("%s: changed while being packed (%d bytes, was %d)", fp, n, size)
	}
	return nil
}

type progressWriter struct {
	w           io.Writer
	done, total int64
	fn          func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	if p.fn != nil && n > 0 {
		p.fn(p.done, p.total)
	}
	return n, err
}

// ExtractTar unpacks a tar or tar.gz stream into dst (created if missing)
// under the same rules as Ingest: nothing is written outside dst, and an
// unsafe entry, an archive over lim (zero fields: the defaults) or a
// corrupt stream is an error. Files are written 0644 or 0755 and folders
// 0755, less the umask; existing files are replaced. Symlinks are created
// last, once the whole tree has been checked.
func ExtractTar(ctx context.Context, r io.Reader, dst string, lim Limits) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("extract to %s: %w", dst, err)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("extract to %s: %w", dst, err)
	}
	defer root.Close()
	t, err := readTar(ctx, r, lim.or(Limits{}), rootSink{root})
	if err != nil {
		return fmt.Errorf("extract to %s: %w", dst, err)
	}
	sink := rootSink{root}
	for _, e := range t.symlinks() {
		if err := sink.parent(e.Path); err != nil {
			return fmt.Errorf("extract to %s: %w", dst, err)
		}
		if err := root.Symlink(e.Target, e.Path); err != nil {
			return fmt.Errorf("extract to %s: %w", dst, err)
		}
	}
	return nil
}

// rootSink writes entries under an os.Root, which refuses any path that
// would resolve outside it.
type rootSink struct{ root *os.Root }

func (s rootSink) dir(p string) error {
	return s.root.MkdirAll(p, 0o755)
}

func (s rootSink) file(ctx context.Context, p string, exec bool, size int64, r io.Reader) (string, error) {
	if err := s.parent(p); err != nil {
		return "", err
	}
	mode := fs.FileMode(0o644)
	if exec {
		mode = 0o755
	}
	f, err := s.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, ctxReader{ctx, r})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("%q: got %d bytes, header says %d: %w", p, n, size, ErrBadArchive)
	}
	return "", nil
}

func (s rootSink) hardlink(p, target string) error {
	if err := s.parent(p); err != nil {
		return err
	}
	if err := s.root.Link(target, p); err == nil {
		return nil
	}
	in, err := s.root.Open(target)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := s.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// parent creates p's parent folders and removes whatever is at p, unless it
// is a folder.
func (s rootSink) parent(p string) error {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		if err := s.root.MkdirAll(p[:i], 0o755); err != nil {
			return err
		}
	}
	return clearPath(s.root, p)
}

func clearPath(root *os.Root, p string) error {
	fi, err := root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s: a folder is in the way", p)
	}
	return root.Remove(p)
}
