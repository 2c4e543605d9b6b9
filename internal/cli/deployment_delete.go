package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newDeploymentDelete(g *globals) *cobra.Command {
	var name, endpoint string
	var yes, noWait bool
	c := &cobra.Command{Use: "delete", Short: "Delete a deployment (it must have no traffic): drains, then stops its instances"}
	c.Flags().StringVarP(&name, "name", "n", "", "deployment name")
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	c.Flags().BoolVar(&noWait, "no-wait", false, "return once deletion has started")
	return g.apiVerb(c, &verb{
		required: []string{"name", "endpoint-name"},
		check: func(*cobra.Command) error {
			return confirm(g, yes, "Delete deployment "+name+" of endpoint "+endpoint+"?")
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			if err := cn.api.DeleteDeployment(ctx, endpoint, name); err != nil {
				return nil, err
			}
			if noWait {
				fmt.Fprintf(g.stderr, "Deleting deployment %s/%s; it is gone when plumbline online-deployment list -e %s no longer shows it\n", endpoint, name, endpoint)
				return nil, nil
			}
			start := time.Now()
			if err := waitGone(ctx, func(ctx context.Context) error { _, err := cn.api.GetDeployment(ctx, endpoint, name); return err }); err != nil {
				return nil, err
			}
			fmt.Fprintf(g.stderr, "Deleted deployment %s/%s (%.1fs)\n", endpoint, name, time.Since(start).Seconds())
			return nil, nil
		},
	})
}
