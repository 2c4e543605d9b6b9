package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

var eventColumns = []column{field("TIME", "time"), field("INSTANCE", "instance"), field("TYPE", "type"), field("REASON", "reason"), field("MESSAGE", "message")}

func newDeploymentEvents(g *globals) *cobra.Command {
	var name, endpoint string
	var limit int
	c := &cobra.Command{Use: "events", Short: "List a deployment's lifecycle events (started, ready, probe failed, restarted, exited, scaled)"}
	c.Flags().StringVarP(&name, "name", "n", "", "deployment name")
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	c.Flags().IntVar(&limit, "limit", 100, "newest events to show")
	return g.apiVerb(c, &verb{
		required: []string{"name", "endpoint-name"},
		call: func(ctx context.Context, cn *conn) (any, error) {
			evs, err := cn.api.Events(ctx, api.EventFilter{Endpoint: endpoint, Deployment: name, Limit: limit})
			if evs == nil {
				evs = []api.Event{}
			}
			return evs, err
		},
		cols: eventColumns,
	})
}
