package cli

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/registry"
)

var fsckColumns = []column{
	field("KIND", "kind"),
	{header: "DIGEST", cell: func(r map[string]any) string { return shortDigest(cellString(r["digest"])) }},
	{header: "FILE", cell: func(r map[string]any) string {
		var out []string
		files, _ := r["files"].([]any)
		for _, f := range files {
			if m, ok := f.(map[string]any); ok {
				out = append(out, cellString(m["path"]))
			}
		}
		if len(out) == 0 {
			return cellString(r["path"])
		}
		return strings.Join(out, ", ")
	}},
	{header: "USED BY", cell: func(r map[string]any) string { return cellString(r["used_by"]) }},
	field("REPAIRED", "repaired"),
	{header: "DETAIL / ACTION", cell: func(r map[string]any) string {
		return cellString(r["detail"]) + " — " + cellString(r["action"])
	}},
}

func newFsckCmd(g *globals) *cobra.Command {
	var repair bool
	var from []string
	var minAge string
	c := &cobra.Command{
		Use:   "fsck",
		Short: "Check the server's blobs, artifacts and cache against what models and deployments use; --repair fixes them",
		Long: `fsck re-hashes every blob in the server's registry, checks every artifact a model
version or deployment uses and every materialized cache tree, and reports each problem with the
file that holds the blob and the models and deployments that use it.

With --repair it restores corrupt or missing blobs from good copies on the server (cache trees
that hold a copy), evicts damaged cache trees (rebuilt at next use), removes leftovers of
interrupted uploads, and wakes the deployments waiting on a repaired blob. With --from PATH
(a model or code folder or file as you registered it) it also sends the right bytes of any
bad blob found under PATH.

The exit code is 0 when nothing is left to fix, 1 otherwise.`,
		Args: noArgs,
	}
	c.Flags().BoolVar(&repair, "repair", false, "repair what can be repaired")
	c.Flags().StringArrayVar(&from, "from", nil, "with --repair: a local file or folder holding good copies (repeatable)")
	c.Flags().StringVar(&minAge, "min-age", "", "how old a temporary file must be to count as a leftover (default 1h)")
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(from) > 0 && !repair {
			return usageErrorf("--from needs --repair")
		}
		for _, p := range from {
			if _, err := os.Stat(p); err != nil {
				return usageErrorf("--from %s: %v", p, err)
			}
		}
		p, err := g.printer()
		if err != nil {
			return err
		}
		cn, err := g.connect()
		if err != nil {
			return err
		}
		ctx := c.Context()
		rep, err := g.fsck(ctx, cn, api.FsckRequest{Repair: repair, MinAge: minAge})
		if err != nil {
			return describe(err)
		}
		if len(from) > 0 && rep.Unrepaired() > 0 {
			sent, err := g.repairFrom(ctx, cn, rep, from)
			if err != nil {
				return describe(err)
			}
			if sent > 0 {
				// Check again: the report then says what is left, and the
				// repair evicts cache trees built from the bad bytes.
				if rep, err = g.fsck(ctx, cn, api.FsckRequest{Repair: true, MinAge: minAge}); err != nil {
					return describe(err)
				}
			}
		}
		if p.format == formatTable && p.query == nil {
			fmt.Fprintf(g.stderr, "Checked %d blobs (%s), %d artifacts, %d cache trees.\n", rep.Blobs, humanBytes(rep.Bytes), rep.Artifacts, rep.CacheTrees)
			if len(rep.Problems) > 0 {
				if err := p.print(rep.Problems, fsckColumns); err != nil {
					return err
				}
			}
		} else if err := p.print(rep, nil); err != nil {
			return err
		}
		left := rep.Unrepaired()
		switch {
		case left > 0:
			hint := ""
			if !repair {
				hint = "; run plumbline fsck --repair"
			}
			return fmt.Errorf("%d problem(s) left%s", left, hint)
		case len(rep.Problems) > 0:
			fmt.Fprintf(g.stderr, "All %d problem(s) repaired.\n", len(rep.Problems))
		default:
			fmt.Fprintln(g.stderr, "No problems found.")
		}
		return nil
	}
	return c
}

// fsck runs one check with a progress bar.
func (g *globals) fsck(ctx context.Context, cn *conn, in api.FsckRequest) (*api.FsckReport, error) {
	label := "Checking blobs"
	if in.Repair {
		label = "Checking and repairing blobs"
	}
	bar := newProgressBar(g.stderr, label)
	rep, err := cn.api.Fsck(ctx, in, bar.update)
	bar.clear()
	return rep, err
}

// repairFrom sends the server every file under the given paths whose bytes
// are a bad blob of rep, and uploads a path that is itself an artifact fsck
// named. It returns how many it sent.
func (g *globals) repairFrom(ctx context.Context, cn *conn, rep *api.FsckReport, paths []string) (int, error) {
	want := map[string]bool{}
	for _, p := range rep.Problems {
		if !p.Repaired && p.Digest != "" && (p.Kind == registry.ProblemCorruptBlob || p.Kind == registry.ProblemMissingBlob) {
			want[p.Digest] = true
		}
	}
	sent := 0
	for _, root := range paths {
		if d, err := registry.LocalDigest(root); err == nil && want[d] {
			if _, err := cn.upload(ctx, g, "artifact", root); err != nil {
				return sent, err
			}
			delete(want, d)
			sent++
		}
		err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil || !de.Type().IsRegular() || len(want) == 0 {
				return err
			}
			d, err := blob.HashFile(ctx, p)
			if err != nil || !want[d] {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			if _, err := cn.api.PutBlob(ctx, d, f, fi.Size()); err != nil {
				return fmt.Errorf("send %s: %w", p, err)
			}
			fmt.Fprintf(g.stderr, "Sent %s (%s) for %s\n", relPath(p), humanBytes(fi.Size()), shortDigest(d))
			delete(want, d)
			sent++
			return nil
		})
		if err != nil {
			return sent, fmt.Errorf("--from %s: %w", root, err)
		}
	}
	return sent, nil
}
