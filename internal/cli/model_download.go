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

// replacePath moves src to dst; an existing dst (other content) is moved
// into trash first and removed once src is in place. When m.Path is ""
// (an artifact with several top-level entries), src is the staging folder
// itself and its entries move one by one.
func replacePath(src, dst, trash string) (replaced bool, err error) {
	if src == trash {
		entries, err := os.ReadDir(src)
		if err != nil {
			return false, err
		}
		for _, e := range entries {
			r, err := replacePath(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), "")
			if err != nil {
				return replaced, err
			}
			replaced = replaced || r
		}
		return replaced, nil
	}
	if _, err := os.Lstat(dst); err == nil {
		old := dst + ".old"
		if trash != "" {
			old = filepath.Join(trash, ".old")
		}
		if err := os.Rename(dst, old); err != nil {
			return false, err
		}
		defer os.RemoveAll(old)
		replaced = true
	}
	return replaced, os.Rename(src, dst)
}

func newModelDownload(g *globals) *cobra.Command {
	var dest string
	c := &cobra.Command{
		Use:   "download",
		Short: "Download a model version's files into <download-path>/<name>/",
	}
	ref := addModelRef(c)
	f := c.Flags()
	f.StringVarP(&dest, "download-path", "p", ".", "folder to download into")
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		check:    ref.check,
		call: func(ctx context.Context, cn *conn) (any, error) {
			m, err := ref.get(ctx, cn)
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
			// As Azure: the files go to <download-path>/<name>/<path>, into
			// folders that may exist. The download is verified in a staging
			// folder beside it before it replaces anything.
			target := filepath.Join(dest, m.Name)
			final := filepath.Join(target, m.Path)
			if old, err := registry.LocalDigest(final); err == nil && old == m.Digest {
				fmt.Fprintf(g.stderr, "Model %s version %s is already in %s (verified %s)\n", m.Name, m.Version, final, shortDigest(m.Digest))
				return nil, nil
			}
			if err := os.MkdirAll(target, 0o755); err != nil {
				return nil, err
			}
			stage, err := os.MkdirTemp(target, ".download-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(stage)
			rc, err := cn.api.DownloadArtifact(ctx, m.Digest)
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			if err := registry.ExtractTar(ctx, rc, stage, registry.Limits{}); err != nil {
				return nil, fmt.Errorf("download model %s:%s: %w", m.Name, m.Version, err)
			}
			staged := filepath.Join(stage, m.Path)
			got, err := registry.LocalDigest(staged)
			if err != nil {
				return nil, err
			}
			if got != m.Digest {
				return nil, fmt.Errorf("downloaded files hash to %s, want %s: the download is corrupt", got, m.Digest)
			}
			replaced, err := replacePath(staged, final, stage)
			if err != nil {
				return nil, fmt.Errorf("download model %s:%s: %w", m.Name, m.Version, err)
			}
			how := ""
			if replaced {
				how = ", replacing the files that were there"
			}
			fmt.Fprintf(g.stderr, "Downloaded model %s version %s to %s%s (%d files, %s, verified %s)\n", m.Name, m.Version, final, how, m.Files, humanBytes(m.Size), shortDigest(m.Digest))
			return nil, nil
		},
	})
}
