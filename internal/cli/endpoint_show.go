package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func newEndpointShow(g *globals) *cobra.Command {
	var name string
	c := &cobra.Command{Use: "show", Short: "Show an endpoint: state, traffic, scoring URI"}
	c.Flags().StringVarP(&name, "name", "n", "", "endpoint name")
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			e, err := cn.api.GetEndpoint(ctx, name)
			if err != nil {
				return nil, err
			}
			return e, nil
		},
		cols: endpointColumns,
	})
}
