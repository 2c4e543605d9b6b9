package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

func newDeploymentLogs(g *globals) *cobra.Command {
	var name, endpoint, instance, container string
	var lines int
	var follow bool
	c := &cobra.Command{
		Use:   "get-logs",
		Short: "Print the console logs of a deployment's instances",
		Example: `  plumbline online-deployment get-logs --name blue --endpoint-name my-endpoint --lines 100
  plumbline online-deployment get-logs -n blue -e my-endpoint --instance blue-1 --follow`,
	}
	f := c.Flags()
	f.StringVarP(&name, "name", "n", "", "deployment name")
	f.StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	f.IntVarP(&lines, "lines", "l", 5000, "maximum number of lines to tail, per instance")
	f.StringVar(&instance, "instance", "", "only this instance (e.g. blue-1)")
	f.BoolVar(&follow, "follow", false, "keep printing new lines")
	f.StringVarP(&container, "container", "c", "", "inference-server (default), or image-build: the log of the deployment's image build")
	return g.apiVerb(c, &verb{
		required: []string{"name", "endpoint-name"},
		check: func(*cobra.Command) error {
			if container != "" && container != "inference-server" && container != "image-build" {
				return usageErrorf("--container %q: want inference-server (the instances' output) or image-build (the log of the deployment's image build)", container)
			}
			return nil
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			rc, err := cn.api.DeploymentLogs(ctx, endpoint, name, api.LogOptions{Lines: lines, Instance: instance, Follow: follow, Container: container})
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			_, err = io.Copy(g.stdout, rc)
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, err
		},
	})
}
