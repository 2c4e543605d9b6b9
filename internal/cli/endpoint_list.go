package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

func newEndpointList(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "list", Short: "List endpoints"}
	return g.apiVerb(c, &verb{
		call: func(ctx context.Context, cn *conn) (any, error) {
			es, err := cn.api.ListEndpoints(ctx)
			if es == nil {
				es = []api.Endpoint{}
			}
			return es, err
		},
		cols: endpointColumns,
	})
}
