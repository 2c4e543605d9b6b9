// Package blob is plumbline's content-addressed blob store on the local
// filesystem: every blob is a file named by the sha256 of its bytes, written
// once (temp file, fsync, rename) and never modified.
//
// Layout: <dir>/sha256/<2 hex>/<64 hex>. Folders are 0700, so only the user
// running plumbline can reach a blob. Blob files are 0444: read-only for
// everyone who can reach them, which is what lets the registry hard-link a
// blob into a read-only artifact tree (a hard link shares its inode, and so
// its mode, with the blob).
//
// Digests are "sha256:<64 lowercase hex>"; anything else is rejected before
// it is turned into a path, so a digest can never point outside the store.
//
// This package imports nothing else from plumbline.
package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

var (
	// ErrNotFound: no blob has that digest.
	ErrNotFound = errors.New("blob not found")
	// ErrInvalidDigest: the string is not "sha256:<64 lowercase hex>".
	ErrInvalidDigest = errors.New(`invalid digest (want "sha256:" and 64 lowercase hex digits)`)
)

// Prefix starts every digest.
const Prefix = "sha256:"

// Modes of what the store creates.
const (
	dirMode  fs.FileMode = 0o700
	blobMode fs.FileMode = 0o444
)

// FS is a blob store rooted at a folder. It is safe for concurrent use, also
// by several processes sharing the folder.
type FS struct {
	dir string
}

// New opens (creating, 0700) the blob store at dir.
func New(dir string) (*FS, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob store %s: %w", dir, err)
	}
	if err := mkdirPrivate(abs); err != nil {
		return nil, fmt.Errorf("blob store %s: %w", abs, err)
	}
	if err := mkdirPrivate(filepath.Join(abs, "sha256")); err != nil {
		return nil, fmt.Errorf("blob store %s: %w", abs, err)
	}
	return &FS{dir: abs}, nil
}

// Dir is the store's root folder.
func (f *FS) Dir() string { return f.dir }

// ValidDigest reports whether d is "sha256:" followed by 64 lowercase hex digits.
func ValidDigest(d string) bool {
	h, ok := strings.CutPrefix(d, Prefix)
	if !ok || len(h) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// CheckDigest returns an error wrapping ErrInvalidDigest unless d is valid.
func CheckDigest(d string) error {
	if !ValidDigest(d) {
		return fmt.Errorf("%q: %w", truncate(d, 80), ErrInvalidDigest)
	}
	return nil
}

// Digest returns the digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return Prefix + hex.EncodeToString(sum[:])
}

// Path is the file that holds (or would hold) the blob, or "" when digest is
// not valid. Callers must treat the file as read-only.
func (f *FS) Path(digest string) string {
	if !ValidDigest(digest) {
		return ""
	}
	h := digest[len(Prefix):]
	return filepath.Join(f.dir, "sha256", h[:2], h)
}

// Has reports whether the blob exists.
func (f *FS) Has(digest string) bool {
	_, err := f.Stat(digest)
	return err == nil
}

// Stat returns the blob's size.
func (f *FS) Stat(digest string) (int64, error) {
	p, err := f.path(digest)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", digest, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("blob %s: not a regular file", digest)
	}
	return fi.Size(), nil
}

// Open opens the blob for reading; the *os.File it returns also implements
// io.ReaderAt and io.Seeker.
func (f *FS) Open(digest string) (io.ReadCloser, error) {
	p, err := f.path(digest)
	if err != nil {
		return nil, err
	}
	file, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", digest, err)
	}
	return file, nil
}

// Put streams r into the store while hashing it and returns the digest and
// size. Storing bytes that are already present is a cheap no-op (the temp
// file is dropped). The blob is fsynced before it becomes visible.
func (f *FS) Put(ctx context.Context, r io.Reader) (digest string, size int64, err error) {
	tmp, err := os.CreateTemp(f.dir, ".put-*")
	if err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	digest = Prefix + hex.EncodeToString(h.Sum(nil))
	final := f.Path(digest)
	if fi, serr := os.Stat(final); serr == nil && fi.Mode().IsRegular() && fi.Size() == size {
		tmp.Close()
		os.Remove(tmpName)
		return digest, size, nil
	}
	if err = tmp.Chmod(blobMode); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, err)
	}
	if err = tmp.Sync(); err != nil {
		return "", 0, fmt.Errorf("put blob %s: fsync: %w", digest, err)
	}
	if err = tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, err)
	}
	if err = mkdirPrivate(filepath.Dir(final)); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, err)
	}
	if err = os.Rename(tmpName, final); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, err)
	}
	syncDir(filepath.Dir(final))
	return digest, size, nil
}

// PutBytes stores b; see Put.
func (f *FS) PutBytes(ctx context.Context, b []byte) (string, error) {
	d, _, err := f.Put(ctx, bytes.NewReader(b))
	return d, err
}

func (f *FS) path(digest string) (string, error) {
	if err := CheckDigest(digest); err != nil {
		return "", err
	}
	return f.Path(digest), nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm() != dirMode {
		return os.Chmod(dir, dirMode)
	}
	return nil
}

// syncDir makes a rename durable; failure only weakens durability, so it is
// not reported.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
