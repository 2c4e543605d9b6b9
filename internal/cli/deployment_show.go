package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func newDeploymentShow(g *globals) *cobra.Command {
	var name, endpoint string
	c := &cobra.Command{Use: "show", Short: "Show a deployment: state, reason, instances and their readiness"}
	c.Flags().StringVarP(&name, "name", "n", "", "deployment name")
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	return g.apiVerb(c, &verb{
		required: []string{"name", "endpoint-name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			d, err := cn.api.GetDeployment(ctx, endpoint, name)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
		cols: deploymentColumns,
	})
}
