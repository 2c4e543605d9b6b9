package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
)

func newDeploymentUpdate(g *globals) *cobra.Command {
	var file, name, endpoint string
	var noWait bool
	var fromFile *spec.Deployment
	c := &cobra.Command{
		Use:   "update",
		Short: "Update a deployment: scale, new model or code (instances are replaced one at a time)",
		Example: `  plumbline online-deployment update --name blue --endpoint-name my-endpoint --set instance_count=2
  plumbline online-deployment update -f blue.yml`,
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "deployment YAML file")
	f.StringVarP(&name, "name", "n", "", "deployment name")
	f.StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	f.BoolVar(&noWait, "no-wait", false, "return once the update has started")
	u := addUpdateFlags(c, true)
	return g.apiVerb(c, &verb{
		check: func(c *cobra.Command) (err error) {
			if file != "" {
				fromFile, err = parseDeploymentFile(g, file, u.updates(), name, endpoint)
				return err
			}
			return requireFlags(c, "name", "endpoint-name")
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			var doc []byte
			var err error
			if fromFile != nil {
				if doc, err = cn.deploymentDocument(ctx, g, fromFile); err != nil {
					return nil, err
				}
				name, endpoint = fromFile.Name, fromFile.EndpointName
			} else {
				b, err := cn.api.GetDeploymentDocument(ctx, endpoint, name)
				if err != nil {
					return nil, err
				}
				pd, err := spec.Parse("deployment "+name, b, spec.ParseOptions{Updates: u.updates(), Expect: spec.KindDeployment})
				if err != nil {
					return nil, err
				}
				if err := pd.Deployment.Validate(); err != nil {
					return nil, err
				}
				if err := cn.uploadLocalPaths(ctx, g, pd.Deployment.LocalPaths()); err != nil {
					return nil, err
				}
				if doc, err = json.Marshal(pd.Deployment); err != nil {
					return nil, err
				}
			}
			start, mark := time.Now(), cn.eventMark(ctx, endpoint)
			out, err := cn.api.UpdateDeployment(ctx, endpoint, name, doc)
			if err != nil {
				return nil, err
			}
			if out.ProvisioningState == api.StateSucceeded {
				return out, nil
			}
			if noWait {
				fmt.Fprintf(g.stderr, "Updating deployment %s/%s; follow with: plumbline online-deployment show -n %s -e %s\n", endpoint, name, name, endpoint)
				return out, nil
			}
			return cn.waitDeployment(ctx, g, endpoint, name, start, mark)
		},
		cols: deploymentColumns,
	})
}
