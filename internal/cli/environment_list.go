package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

func newEnvironmentList(g *globals) *cobra.Command {
	var o api.EnvironmentListOptions
	c := &cobra.Command{Use: "list", Short: "List environment versions"}
	f := c.Flags()
	f.StringVarP(&o.Name, "name", "n", "", "only this environment's versions")
	f.BoolVar(&o.IncludeArchived, "include-archived", false, "include archived versions")
	f.BoolVar(&o.ArchivedOnly, "archived-only", false, "only archived versions")
	f.IntVarP(&o.MaxResults, "max-results", "r", 0, "at most this many")
	return g.apiVerb(c, &verb{
		call: func(ctx context.Context, cn *conn) (any, error) {
			es, err := cn.api.ListEnvironments(ctx, o)
			if es == nil {
				es = []api.Environment{}
			}
			return es, err
		},
		cols: environmentColumns,
	})
}
