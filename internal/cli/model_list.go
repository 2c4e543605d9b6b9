package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

func newModelList(g *globals) *cobra.Command {
	var o api.ModelListOptions
	c := &cobra.Command{Use: "list", Short: "List model versions"}
	f := c.Flags()
	f.StringVarP(&o.Name, "name", "n", "", "only this model's versions")
	f.BoolVar(&o.IncludeArchived, "include-archived", false, "include archived versions")
	f.BoolVar(&o.ArchivedOnly, "archived-only", false, "only archived versions")
	f.IntVarP(&o.MaxResults, "max-results", "r", 0, "at most this many")
	return g.apiVerb(c, &verb{
		call: func(ctx context.Context, cn *conn) (any, error) {
			ms, err := cn.api.ListModels(ctx, o)
			if ms == nil {
				ms = []api.Model{}
			}
			return ms, err
		},
		cols: modelColumns,
	})
}
