package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/internal/spec"
)

func newDeploymentCreate(g *globals) *cobra.Command {
	var file, name, endpoint string
	var allTraffic, noWait, skipValidation bool
	var d *spec.Deployment
	c := &cobra.Command{
		Use:   "create",
		Short: "Create a deployment (fails if it exists; see 'plumbline apply')",
		Example: `  plumbline online-deployment create -f deployment.yml --all-traffic
  plumbline online-deployment create -f green.yml --set instance_count=2`,
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "deployment YAML file")
	f.StringVarP(&name, "name", "n", "", "deployment name (overrides the file's)")
	f.StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name (overrides the file's)")
	f.BoolVar(&allTraffic, "all-traffic", false, "after a successful creation, send 100% of the endpoint's traffic to this deployment")
	f.BoolVar(&noWait, "no-wait", false, "return once creation has started")
	f.BoolVar(&skipValidation, "skip-script-validation", false, "accepted for compatibility (plumbline checks R scripts itself)")
	u := addUpdateFlags(c, false)
	return g.apiVerb(c, &verb{
		required: []string{"file"},
		check: func(*cobra.Command) (err error) {
			if allTraffic && noWait {
				return usageErrorf("--all-traffic sets traffic after a successful creation and does not work with --no-wait")
			}
			d, err = parseDeploymentFile(g, file, u.updates(), name, endpoint)
			return err
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			doc, err := cn.deploymentDocument(ctx, g, d)
			if err != nil {
				return nil, err
			}
			start, mark := time.Now(), cn.eventMark(ctx, d.EndpointName)
			out, err := cn.api.CreateDeployment(ctx, d.EndpointName, doc)
			if err != nil {
				return nil, err
			}
			if noWait {
				fmt.Fprintf(g.stderr, "Creating deployment %s/%s; follow with: plumbline online-deployment show -n %s -e %s\n", d.EndpointName, d.Name, d.Name, d.EndpointName)
				return out, nil
			}
			out, err = cn.waitDeployment(ctx, g, d.EndpointName, d.Name, start, mark)
			if err != nil {
				return nil, err
			}
			if allTraffic {
				if err := cn.setAllTraffic(ctx, g, d.EndpointName, d.Name); err != nil {
					return nil, err
				}
			}
			return out, nil
		},
		cols: deploymentColumns,
	})
}
