package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newEndpointDelete(g *globals) *cobra.Command {
	var name string
	var yes, noWait bool
	c := &cobra.Command{Use: "delete", Short: "Delete an endpoint and all its deployments"}
	c.Flags().StringVarP(&name, "name", "n", "", "endpoint name")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	c.Flags().BoolVar(&noWait, "no-wait", false, "return once deletion has started")
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		check: func(*cobra.Command) error {
			return confirm(g, yes, "Delete endpoint "+name+" and all its deployments?")
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			if err := cn.api.DeleteEndpoint(ctx, name); err != nil {
				return nil, err
			}
			if noWait {
				fmt.Fprintf(g.stderr, "Deleting endpoint %s; it is gone when plumbline online-endpoint list no longer shows it\n", name)
				return nil, nil
			}
			start := time.Now()
			if err := waitGone(ctx, func(ctx context.Context) error { _, err := cn.api.GetEndpoint(ctx, name); return err }); err != nil {
				return nil, err
			}
			fmt.Fprintf(g.stderr, "Deleted endpoint %s (%.1fs)\n", name, time.Since(start).Seconds())
			return nil, nil
		},
	})
}
