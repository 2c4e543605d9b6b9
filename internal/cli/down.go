package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/datadir"
)

func newDownCmd(g *globals) *cobra.Command {
	var files []string
	var stopServer bool
	c := &cobra.Command{
		Use:   "down [DIR]",
		Short: "Remove the endpoint (and its deployments) that 'up DIR' created",
		Long: `Remove the endpoint (and its deployments) that 'up DIR' created. Registered models are kept.
The local server keeps running for other endpoints; --stop-server stops it too (as
'plumbline stop' does).`,
		Example: "  plumbline down examples/r-iris\n  plumbline down examples/r-iris --stop-server",
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
					return g.afterDown(ctx, stopServer)
				}
				return describe(err)
			}
			if err := waitGone(ctx, func(ctx context.Context) error { _, err := cn.api.GetEndpoint(ctx, name); return err }); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "Removed endpoint %s and its deployments (%.1fs). Registered models are kept: see plumbline model list\n", name, time.Since(start).Seconds())
			return g.afterDown(ctx, stopServer)
		},
	}
	c.Flags().StringArrayVarP(&files, "file", "f", nil, "endpoint file (default DIR/endpoint.yml)")
	c.Flags().BoolVar(&stopServer, "stop-server", false, "also stop the local server (as plumbline stop does)")
	return c
}

// afterDown stops the local server when asked, and otherwise says that it
// keeps running and how to stop it.
func (g *globals) afterDown(ctx context.Context, stop bool) error {
	if stop {
		return g.stopServer(ctx, time.Minute)
	}
	if g.server != "" || os.Getenv(envServer) != "" {
		return nil // a server someone else runs
	}
	dd, err := datadir.Open(g.dataDirPath())
	if err != nil {
		return nil
	}
	if pid, err := runningServer(dd); err == nil && pid > 0 {
		fmt.Fprintf(g.stderr, "The local plumbline server (pid %d) keeps running; stop it with: plumbline stop\n", pid)
	}
	return nil
}
