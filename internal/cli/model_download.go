package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/spec"
)

func newModelDownload(g *globals) *cobra.Command {
	var dest, v string
	c := &cobra.Command{
		Use:   "download",
		Short: "Download a model version's files into <download-path>/<name>/",
	}
	ref := addModelRef(c)
	f := c.Flags()
	f.StringVarP(&dest, "download-path", "p", ".", "folder to download into")
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		check: func(*cobra.Command) (err error) {
			v, err = versionOrLabel(ref.version, ref.label)
			return err
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			m, err := cn.api.GetModel(ctx, ref.name, v)
			if err != nil {
				return nil, err
			}
			// The server's answer names folders on this disk: check it.
			if err := spec.ValidateName("model", m.Name); err != nil {
				return nil, fmt.Errorf("the server returned a model name that is not safe as a folder name %q: %w", m.Name, err)
			}
			if m.Path != "" && (m.Path != filepath.Base(m.Path) || m.Path == ".." || m.Path == ".") {
				return nil, fmt.Errorf("the server returned a model path that is not one file or folder name: %q", m.Path)
			}
			target := filepath.Join(dest, m.Name)
			if _, err := os.Stat(target); err == nil {
				return nil, fmt.Errorf("%s already exists; remove it or choose another --download-path", target)
			}
			rc, err := cn.api.DownloadArtifact(ctx, m.Digest)
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			if err := os.MkdirAll(target, 0o755); err != nil {
				return nil, err
			}
			if err := registry.ExtractTar(ctx, rc, target, registry.Limits{}); err != nil {
				return nil, fmt.Errorf("download model %s:%s: %w", m.Name, m.Version, err)
			}
			got, err := registry.LocalDigest(filepath.Join(target, m.Path))
			if err != nil {
				return nil, err
			}
			if got != m.Digest {
				return nil, fmt.Errorf("downloaded files hash to %s, want %s: the download is corrupt", got, m.Digest)
			}
			fmt.Fprintf(g.stderr, "Downloaded model %s version %s to %s (%d files, %s, verified %s)\n", m.Name, m.Version, filepath.Join(target, m.Path), m.Files, humanBytes(m.Size), shortDigest(m.Digest))
			return nil, nil
		},
	})
}
