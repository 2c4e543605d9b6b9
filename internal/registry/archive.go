package registry

import (
	"archive/tar"
	"bufio"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/plumbline/plumbline/internal/blob"
)

// sink receives the entries of an archive as readTar accepts them. Paths
// are clean and relative; parents are folders already passed to the sink or
// implied by earlier entries (a sink that writes to disk creates them).
type sink interface {
	dir(p string) error
	// file consumes exactly size bytes from r and returns the content's
	// digest, or "" when the sink does not compute one.
	file(ctx context.Context, p string, exec bool, size int64, r io.Reader) (string, error)
	// hardlink makes p a copy of the earlier file target.
	hardlink(p, target string) error
}

// readTar reads a tar or tar.gz stream entry by entry, checks every entry
// against the safety rules and lim, and hands accepted ones to s. Symlinks
// are only recorded: the caller creates them, if at all, after readTar has
// checked the complete tree. Nothing is buffered beyond one read block.
func readTar(ctx context.Context, r io.Reader, lim Limits, s sink) (*tree, error) {
	br := bufio.NewReader(ctxReader{ctx, r})
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, readErr(ctx, err)
		}
		defer gz.Close()
		in = gz
	}
	tr := tar.NewReader(in)
	t := newTree(lim)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readErr(ctx, err)
		}
		if err := acceptEntry(ctx, t, tr, hdr, s); err != nil {
			var ee *EntryError
			if errors.As(err, &ee) {
				ee.Entry = hdr.Name
			}
			return nil, err
		}
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("archive has no files or folders: %w", ErrBadArchive)
	}
	// With gzip, read on a little so a corrupt trailer (CRC, length) is
	// reported rather than ignored.
	if gz, ok := in.(*gzip.Reader); ok {
		if _, err := io.CopyN(io.Discard, gz, 1<<20); err != nil && err != io.EOF {
			return nil, readErr(ctx, err)
		}
	}
	if err := t.checkLinks(""); err != nil {
		return nil, err
	}
	return t, nil
}

func acceptEntry(ctx context.Context, t *tree, tr *tar.Reader, hdr *tar.Header, s sink) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader { // pax metadata (git archive writes one)
		return t.admit(hdr.Name, 0)
	}
	p, err := cleanPath(hdr.Name)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := t.admit(hdr.Name, 0); err != nil {
			return err
		}
		if err := t.addDir(p); err != nil {
			return err
		}
		if p == "" {
			return nil
		}
		return s.dir(p)

	case tar.TypeReg:
		if err := t.admit(hdr.Name, hdr.Size); err != nil {
			return err
		}
		exec := hdr.Mode&0o111 != 0
		// Check the path before writing anything.
		if err := t.addFile(p, exec, hdr.Size, ""); err != nil {
			return err
		}
		digest, err := s.file(ctx, p, exec, hdr.Size, tr)
		if err != nil {
			if ctx.Err() != nil || corrupt(err) {
				return readErr(ctx, err)
			}
			return fmt.Errorf("%q: %w", hdr.Name, err)
		}
		t.entries[p].Digest = digest
		return nil

	case tar.TypeLink:
		target, err := cleanPath(hdr.Linkname)
		if err != nil {
			return unsafeEntry(hdr.Name, fmt.Sprintf("hard link to %q outside the tree", hdr.Linkname))
		}
		te := t.entries[target]
		size := int64(0)
		if te != nil {
			size = te.Size
		}
		if err := t.admit(hdr.Name, size); err != nil {
			return err
		}
		if err := t.addHardlink(p, target); err != nil {
			return err
		}
		return s.hardlink(p, target)

	case tar.TypeSymlink:
		if err := t.admit(hdr.Name, 0); err != nil {
			return err
		}
		return t.addSymlink(p, hdr.Linkname)

	case tar.TypeChar, tar.TypeBlock:
		return unsafeEntry(hdr.Name, "device file")
	case tar.TypeFifo:
		return unsafeEntry(hdr.Name, "named pipe (fifo)")
	case tar.TypeGNUSparse:
		return unsafeEntry(hdr.Name, "sparse file")
	}
	return unsafeEntry(hdr.Name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
}

// readErr classifies an error met while reading the stream: the context's
// own error, or an invalid archive.
func readErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
		return err
	}
	var ee *EntryError
	if errors.As(err, &ee) {
		return err
	}
	if corrupt(err) {
		return fmt.Errorf("read archive: %w (%v)", ErrBadArchive, err)
	}
	return fmt.Errorf("read archive: %w", err)
}

// corrupt reports whether err says the stream is not a valid tar or gzip.
func corrupt(err error) bool {
	for _, target := range []error{ErrBadArchive, tar.ErrHeader, io.ErrUnexpectedEOF, gzip.ErrHeader,
		gzip.ErrChecksum, tar.ErrInsecurePath, tar.ErrFieldTooLong} {
		if errors.Is(err, target) {
			return true
		}
	}
	var flateErr flate.CorruptInputError
	return errors.As(err, &flateErr)
}

// blobSink stores files in the blob store.
type blobSink struct{ blobs *blob.FS }

func (blobSink) dir(string) error              { return nil }
func (blobSink) hardlink(string, string) error { return nil }

func (b blobSink) file(ctx context.Context, p string, _ bool, size int64, r io.Reader) (string, error) {
	d, n, err := b.blobs.Put(ctx, r)
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("read archive: %q: got %d bytes, header says %d: %w", p, n, size, ErrBadArchive)
	}
	return d, nil
}

// Ingest reads a tar or tar.gz stream as it arrives, stores every file in
// the blob store and then the manifest, and returns the artifact. Zero
// fields of lim take the registry's limits. Refused archives fail with an
// *EntryError (ErrUnsafeEntry, ErrTooLarge) or ErrBadArchive, and leave no
// manifest (file blobs already stored stay; they are content-addressed).
func (r *Registry) Ingest(ctx context.Context, rd io.Reader, lim Limits) (Artifact, error) {
	t, err := readTar(ctx, rd, lim.or(r.lim), blobSink{r.blobs})
	if err != nil {
		return Artifact{}, fmt.Errorf("ingest: %w", err)
	}
	m := t.manifest()
	b, digest, err := m.encode()
	if err != nil {
		return Artifact{}, fmt.Errorf("ingest: %w", err)
	}
	if _, err := r.blobs.PutBytes(ctx, b); err != nil {
		return Artifact{}, fmt.Errorf("ingest: store manifest: %w", err)
	}
	return summary(digest, m), nil
}

// Manifest returns an artifact's manifest. ErrArtifactNotFound when there
// is no such blob or the blob is not a manifest; an error wrapping
// blob.ErrCorrupt when the manifest's bytes do not hash to digest.
func (r *Registry) Manifest(ctx context.Context, digest string) (Manifest, error) {
	if err := blob.CheckDigest(digest); err != nil {
		return Manifest{}, fmt.Errorf("artifact: %w", err)
	}
	size, err := r.blobs.Stat(digest)
	if errors.Is(err, blob.ErrNotFound) {
		return Manifest{}, fmt.Errorf("artifact %s: %w; upload it first", digest, ErrArtifactNotFound)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("artifact %s: %w", digest, err)
	}
	if size > maxManifestBytes {
		return Manifest{}, fmt.Errorf("artifact %s: %w", digest, notManifest{"too large"})
	}
	rc, err := r.blobs.Open(digest)
	if err != nil {
		return Manifest{}, fmt.Errorf("artifact %s: %w", digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(ctxReader{ctx, rc}, maxManifestBytes+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("artifact %s: %w", digest, err)
	}
	if got := blob.Digest(b); got != digest {
		return Manifest{}, fmt.Errorf("artifact %s: manifest: %w", digest, &blob.CorruptError{Digest: digest, Path: r.blobs.Path(digest), Got: got})
	}
	m, err := parseManifest(b)
	if err != nil {
		return Manifest{}, fmt.Errorf("artifact %s: %w", digest, notManifest{err.Error()})
	}
	return m, nil
}

// Has reports whether digest names an artifact the registry holds whole:
// its manifest and every file's blob present with the right bytes (checked
// as blob.FS.Check does). A client asks before uploading; an artifact with
// a missing or corrupt blob answers false, so the client uploads it again
// and the upload repairs it. An artifact that is there is marked as used
// now, so a garbage collection does not take it before the client
// references it.
func (r *Registry) Has(ctx context.Context, digest string) bool {
	return r.Check(ctx, digest) == nil
}

// Check returns nil when the artifact is whole (see Has), or the first
// problem: ErrArtifactNotFound, or an error wrapping blob.ErrNotFound or
// blob.ErrCorrupt that names the blob and the file it holds.
func (r *Registry) Check(ctx context.Context, digest string) error {
	m, err := r.Manifest(ctx, digest)
	if err != nil {
		return err
	}
	for _, e := range m.Entries {
		if e.Type != TypeFile {
			continue
		}
		if err := r.blobs.Check(ctx, e.Digest); err != nil {
			return fmt.Errorf("artifact %s: %s: %w", short(digest), e.Path, err)
		}
	}
	r.blobs.Touch(digest)
	for _, e := range m.Entries {
		if e.Type == TypeFile {
			r.blobs.Touch(e.Digest)
		}
	}
	return nil
}

// notManifest: the blob is there, with the right bytes, and is not a
// manifest (a file's blob). It wraps ErrArtifactNotFound.
type notManifest struct{ why string }

func (e notManifest) Error() string {
	return fmt.Sprintf("blob is not a manifest (%s): %v", e.why, ErrArtifactNotFound)
}
func (e notManifest) Unwrap() error { return ErrArtifactNotFound }

func isNotManifest(err error) bool {
	var nm notManifest
	return errors.As(err, &nm)
}

// ctxReader stops a read loop when its context ends.
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
