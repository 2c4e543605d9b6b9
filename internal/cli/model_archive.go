package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// newModelArchive is `model archive` (archive true) or `model restore`.
func newModelArchive(g *globals, archive bool) *cobra.Command {
	var name, version string
	use, short := "archive", "Archive a model version (or all versions): @latest skips it"
	if !archive {
		use, short = "restore", "Restore an archived model version (or all versions)"
	}
	c := &cobra.Command{Use: use, Short: short}
	c.Flags().StringVarP(&name, "name", "n", "", "model name")
	c.Flags().StringVarP(&version, "version", "v", "", "version (default: all versions)")
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			if err := cn.api.ArchiveModel(ctx, name, version, archive); err != nil {
				return nil, err
			}
			what := "all versions of model " + name
			if version != "" {
				what = "model " + name + " version " + version
			}
			verb := "Archived"
			if !archive {
				verb = "Restored"
			}
			fmt.Fprintf(g.stderr, "%s %s\n", verb, what)
			return nil, nil
		},
	})
}
