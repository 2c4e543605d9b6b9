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
// Integrity: a blob's name is a claim about its bytes, and the store checks
// the claim rather than trust it. Put hashes what it writes and, when a blob
// of that name already exists, checks the existing file's bytes (not its
// size) and replaces it if they are wrong. Check re-hashes a blob unless it
// was verified already and its file is unchanged since (same inode, size,
// modification and change times: a stamp); Verify always re-hashes (fsck).
// A blob whose bytes are wrong is an *CorruptError (ErrCorrupt). Writes that
// fail for lack of disk space wrap ErrNoSpace. Temporary files of writes
// that never finished (a kill -9 during an upload) are removed by
// RemovePartial, which the server calls at start.
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
	"sync"
	"syscall"
	"time"
)

var (
	// ErrNotFound: no blob has that digest.
	ErrNotFound = errors.New("blob not found")
	// ErrInvalidDigest: the string is not "sha256:<64 lowercase hex>".
	ErrInvalidDigest = errors.New(`invalid digest (want "sha256:" and 64 lowercase hex digits)`)
	// ErrCorrupt: a blob's bytes do not hash to its name.
	ErrCorrupt = errors.New("blob is corrupt")
	// ErrDigestMismatch: bytes given for a digest hash to another.
	ErrDigestMismatch = errors.New("bytes do not match the digest")
	// ErrNoSpace: a write failed because the disk (or the user's quota) is
	// full. The error also wraps the system's ENOSPC or EDQUOT.
	ErrNoSpace = errors.New("no space left on the server's disk")
)

// CorruptError is a blob whose bytes hash to Got instead of its name.
type CorruptError struct {
	Digest string // the blob's name
	Path   string // its file
	Got    string // what its bytes hash to
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("blob %s is corrupt: its file %s holds bytes that hash to %s", e.Digest, e.Path, e.Got)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// NoSpace wraps err with ErrNoSpace when it says the disk or the quota is
// full, and returns it unchanged otherwise.
func NoSpace(err error) error {
	if err != nil && !errors.Is(err, ErrNoSpace) && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// Prefix starts every digest.
const Prefix = "sha256:"

// Modes of what the store creates.
const (
	dirMode  fs.FileMode = 0o700
	blobMode fs.FileMode = 0o444
)

// partialPrefix starts the name of a blob being written.
const partialPrefix = ".put-"

// FS is a blob store rooted at a folder. It is safe for concurrent use, also
// by several processes sharing the folder.
type FS struct {
	dir string

	mu       sync.Mutex       // protects verified
	verified map[string]Stamp // by digest: the file's stamp when its bytes last hashed right
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
	return &FS{dir: abs, verified: map[string]Stamp{}}, nil
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
// size. When a blob of that digest exists already and its bytes are right,
// the new copy is dropped (and the old file's modification time refreshed,
// so that a garbage collection does not take it as long unused); when its
// bytes are wrong, the new copy replaces it. The blob is fsynced before it
// becomes visible. A full disk fails with an error wrapping ErrNoSpace.
func (f *FS) Put(ctx context.Context, r io.Reader) (digest string, size int64, err error) {
	return f.put(ctx, r, "")
}

// PutDigest is Put for bytes that must hash to want: anything else is
// dropped and the error wraps ErrDigestMismatch. It is how a blob is
// repaired from a copy a client sends.
func (f *FS) PutDigest(ctx context.Context, r io.Reader, want string) (size int64, err error) {
	if err := CheckDigest(want); err != nil {
		return 0, err
	}
	_, size, err = f.put(ctx, r, want)
	return size, err
}

func (f *FS) put(ctx context.Context, r io.Reader, want string) (digest string, size int64, err error) {
	tmp, err := os.CreateTemp(f.dir, partialPrefix+"*")
	if err != nil {
		return "", 0, fmt.Errorf("put blob: %w", NoSpace(err))
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
		return "", 0, fmt.Errorf("put blob: %w", NoSpace(err))
	}
	digest = Prefix + hex.EncodeToString(h.Sum(nil))
	if want != "" && digest != want {
		err = fmt.Errorf("put blob %s: the bytes hash to %s: %w", want, digest, ErrDigestMismatch)
		return "", 0, err
	}
	final := f.Path(digest)
	if cerr := f.check(ctx, digest, false); cerr == nil {
		tmp.Close()
		os.Remove(tmpName)
		f.Touch(digest)
		return digest, size, nil
	} else if ctx.Err() != nil {
		return "", 0, fmt.Errorf("put blob: %w", ctx.Err())
	}
	if err = tmp.Chmod(blobMode); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, err)
	}
	if err = tmp.Sync(); err != nil {
		return "", 0, fmt.Errorf("put blob %s: fsync: %w", digest, NoSpace(err))
	}
	if err = tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, NoSpace(err))
	}
	if err = mkdirPrivate(filepath.Dir(final)); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, NoSpace(err))
	}
	// A corrupt file of that name (or none) is replaced atomically: readers
	// see the old inode or the new one, never a mix.
	if err = os.Rename(tmpName, final); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, NoSpace(err))
	}
	syncDir(filepath.Dir(final))
	f.remember(digest, final)
	return digest, size, nil
}

// Check returns nil when the blob exists and its bytes hash to its digest.
// It re-hashes the file unless this FS verified it already and the file's
// stamp (inode, size, modification and change times) has not changed since:
// a write through any path changes the stamp. Errors: ErrNotFound,
// *CorruptError (ErrCorrupt), ErrInvalidDigest, or the read error.
func (f *FS) Check(ctx context.Context, digest string) error {
	return f.check(ctx, digest, false)
}

// Verify is Check without the shortcut: it always re-hashes the file, so it
// also finds bytes that changed without a write (a failing disk). fsck uses
// it.
func (f *FS) Verify(ctx context.Context, digest string) error {
	return f.check(ctx, digest, true)
}

func (f *FS) check(ctx context.Context, digest string, full bool) error {
	p, err := f.path(digest)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	if !fi.Mode().IsRegular() {
		return &CorruptError{Digest: digest, Path: p, Got: "(not a regular file)"}
	}
	st := StampOf(fi)
	if !full {
		f.mu.Lock()
		old, ok := f.verified[digest]
		f.mu.Unlock()
		if ok && old == st {
			return nil
		}
	}
	got, err := HashFile(ctx, p)
	if err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	if got != digest {
		f.forget(digest)
		return &CorruptError{Digest: digest, Path: p, Got: got}
	}
	f.mu.Lock()
	f.verified[digest] = st
	f.mu.Unlock()
	return nil
}

// remember records the stamp of a blob file whose bytes are known right.
func (f *FS) remember(digest, p string) {
	if fi, err := os.Stat(p); err == nil {
		f.mu.Lock()
		f.verified[digest] = StampOf(fi)
		f.mu.Unlock()
	}
}

func (f *FS) forget(digest string) {
	f.mu.Lock()
	delete(f.verified, digest)
	f.mu.Unlock()
}

// HashFile returns the digest of the file at p.
func HashFile(ctx context.Context, p string) (string, error) {
	file, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, file}); err != nil {
		return "", err
	}
	return Prefix + hex.EncodeToString(h.Sum(nil)), nil
}

// Touch sets the blob's modification time to now: it was just used, and a
// garbage collection with a minimum age leaves it alone. A blob verified
// before the touch stays verified. Errors are ignored: a blob that cannot be
// touched only looks older than it is.
func (f *FS) Touch(digest string) {
	p := f.Path(digest)
	if p == "" {
		return
	}
	before, err := os.Stat(p)
	if err != nil || time.Since(before.ModTime()) < touchEvery {
		return
	}
	f.mu.Lock()
	old, ok := f.verified[digest]
	f.mu.Unlock()
	now := time.Now()
	if os.Chtimes(p, now, now) != nil || !ok || old != StampOf(before) {
		return
	}
	f.remember(digest, p)
}

// touchEvery is how recent a blob's modification time may be for Touch to
// leave it: a touch changes the inode change time too, which costs a
// re-hash at the next Check.
const touchEvery = time.Minute

// Verified reports whether fi (a file holding the blob: its own file or a
// hard link to it) is in the state in which this FS last verified the blob.
func (f *FS) Verified(digest string, fi fs.FileInfo) bool {
	f.mu.Lock()
	st, ok := f.verified[digest]
	f.mu.Unlock()
	return ok && st == StampOf(fi)
}

// Remove deletes a blob. It is not an error if there is none. The caller
// must know nothing references it.
func (f *FS) Remove(digest string) error {
	p, err := f.path(digest)
	if err != nil {
		return err
	}
	f.forget(digest)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", digest, err)
	}
	return nil
}

// Info describes one file found in the store by Walk.
type Info struct {
	// Digest is the blob's name, or "" for a file whose name is not a
	// digest (Path says where it is).
	Digest  string
	Path    string
	Size    int64
	ModTime time.Time
}

// Walk calls fn for every file under the store's sha256 folder, blobs and
// strays alike (a stray has no Digest), in no particular order. Temporary
// files of writes in progress are not included. fn's error stops the walk
// and is returned.
func (f *FS) Walk(ctx context.Context, fn func(Info) error) error {
	root := filepath.Join(f.dir, "sha256")
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		in := Info{Path: p, Size: fi.Size(), ModTime: fi.ModTime()}
		rel, _ := filepath.Rel(root, p)
		if d := Prefix + filepath.Base(p); ValidDigest(d) && rel == filepath.Join(d[len(Prefix):len(Prefix)+2], d[len(Prefix):]) && fi.Mode().IsRegular() {
			in.Digest = d
		}
		return fn(in)
	})
}

// RemovePartial removes the temporary files of writes that never finished
// (a process killed during an upload) and returns how many bytes it freed.
// Call it only when no other process writes to the store: the server does,
// at start, holding the data dir's lock.
func (f *FS) RemovePartial() (files int, bytes int64, err error) {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return 0, 0, fmt.Errorf("blob store %s: %w", f.dir, err)
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), partialPrefix) {
			continue
		}
		var size int64
		if fi, err := e.Info(); err == nil {
			size = fi.Size()
		}
		if err := os.Remove(filepath.Join(f.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		files++
		bytes += size
	}
	return files, bytes, errors.Join(errs...)
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
