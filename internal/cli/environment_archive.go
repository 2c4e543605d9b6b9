package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// newEnvironmentArchive is `environment archive` (archive true) or
// `environment restore`.
func newEnvironmentArchive(g *globals, archive bool) *cobra.Command {
	var name, version string
	use, short, done := "archive", "Archive an environment version (or all versions): @latest skips it", "Archived"
	if !archive {
		use, short, done = "restore", "Restore an archived environment version (or all versions)", "Restored"
	}
	c := &cobra.Command{Use: use, Short: short}
	c.Flags().StringVarP(&name, "name", "n", "", "environment name")
	c.Flags().StringVarP(&version, "version", "v", "", "version (default: all versions)")
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			if err := cn.api.ArchiveEnvironment(ctx, name, version, archive); err != nil {
				return nil, err
			}
			what := "all versions of environment " + name
			if version != "" {
				what = "environment " + name + " version " + version
			}
			fmt.Fprintf(g.stderr, "%s %s\n", done, what)
			return nil, nil
		},
	})
}
