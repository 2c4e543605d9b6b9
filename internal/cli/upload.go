package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/plumbline/plumbline/internal/registry"
)

// upload sends a local file or folder to the server as an artifact, unless
// the server already has identical content, and returns its digest.
func (cn *conn) upload(ctx context.Context, g *globals, what, path string) (string, error) {
	digest, err := registry.LocalDigest(path)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, path, err)
	}
	has, err := cn.api.HasArtifact(ctx, digest)
	if err != nil {
		return "", err
	}
	rel := relPath(path)
	if has {
		fmt.Fprintf(g.stderr, "%s %s: already uploaded (%s)\n", what, rel, shortDigest(digest))
		return digest, nil
	}
	bar := newProgressBar(g.stderr, "Uploading "+what+" "+rel)
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(registry.WriteTar(ctx, pw, path, bar.update))
	}()
	a, err := cn.api.UploadArtifact(ctx, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		bar.finish("")
		return "", fmt.Errorf("upload %s %s: %w", what, rel, err)
	}
	if a.Digest != digest {
		return "", fmt.Errorf("upload %s %s: the server computed %s but the local files hash to %s; did they change during the upload?", what, rel, a.Digest, digest)
	}
	bar.finish(fmt.Sprintf("Uploaded %s %s: %d files, %s (%s)", what, rel, a.Files, humanBytes(a.Size), shortDigest(a.Digest)))
	return a.Digest, nil
}

func relPath(p string) string {
	if r, err := filepath.Rel(".", p); err == nil && len(r) < len(p) {
		return "./" + r
	}
	return p
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
