package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

func newDeploymentList(g *globals) *cobra.Command {
	var endpoint string
	c := &cobra.Command{Use: "list", Short: "List an endpoint's deployments"}
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	return g.apiVerb(c, &verb{
		required: []string{"endpoint-name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			ds, err := cn.api.ListDeployments(ctx, endpoint)
			if ds == nil {
				ds = []api.Deployment{}
			}
			return ds, err
		},
		cols: deploymentColumns,
	})
}
