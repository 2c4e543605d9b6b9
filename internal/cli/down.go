package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

func newDownCmd(g *globals) *cobra.Command {
	var files []string
	c := &cobra.Command{
		Use:     "down [DIR]",
		Short:   "Remove the endpoint (and its deployments) that 'up DIR' created",
		Example: "  plumbline down examples/r-iris",
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("down takes one folder, got %d", len(args))
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			plan, err := loadUpPlan(dir, files, nil)
			if err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			name := plan.endpoint.Name
			start := time.Now()
			if err := cn.api.DeleteEndpoint(ctx, name); err != nil {
				if api.IsNotFound(err) {
					fmt.Fprintf(g.stderr, "Endpoint %s does not exist; nothing to remove\n", name)
					return nil
				}
				return describe(err)
			}
			if err := waitGone(ctx, func(ctx context.Context) error { _, err := cn.api.GetEndpoint(ctx, name); return err }); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "Removed endpoint %s and its deployments (%.1fs). Registered models are kept: see plumbline model list\n", name, time.Since(start).Seconds())
			return nil
		},
	}
	c.Flags().StringArrayVarP(&files, "file", "f", nil, "endpoint file (default DIR/endpoint.yml)")
	return c
}
