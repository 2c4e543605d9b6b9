package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

// Containers get-logs --container names, as Azure's.
const (
	containerInference  = "inference-server"
	containerStorage    = "storage-initializer"
	containerImageBuild = "image-build"
)

func newDeploymentLogs(g *globals) *cobra.Command {
	var name, endpoint, instance, container string
	var lines int
	var follow bool
	c := &cobra.Command{
		Use:   "get-logs",
		Short: "Print the console logs of one of a deployment's instances (or all), or its storage-initializer step",
		Long: `Print the last lines of a deployment's logs. As Azure does, one instance is picked when
--instance is not given (the first ready one); --instance all prints every instance's, each
under a header (with --follow, lines are prefixed with the instance's name).

--container inference-server (the default) is the scoring server's console output;
--container storage-initializer is the step that fetches and materialises the model and code
each instance mounts (one line per step, with its digest and time); under serve --driver
kubernetes it is the log of the pods' init container (plumbline fetch).`,
		Example: `  plumbline online-deployment get-logs --name blue --endpoint-name my-endpoint --lines 100
  plumbline online-deployment get-logs -n blue -e my-endpoint --instance all --follow
  plumbline online-deployment get-logs -n blue -e my-endpoint --container storage-initializer`,
	}
	f := c.Flags()
	f.StringVarP(&name, "name", "n", "", "deployment name")
	f.StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	f.IntVarP(&lines, "lines", "l", 5000, "maximum number of lines to tail, per instance")
	f.StringVar(&instance, "instance", "", "an instance (blue-1), or all; default: one picked as Azure does")
	f.BoolVar(&follow, "follow", false, "keep printing new lines (inference-server)")
	f.StringVarP(&container, "container", "c", containerInference, "inference-server, storage-initializer, or image-build (the log of the deployment's image build)")
	return g.apiVerb(c, &verb{
		required: []string{"name", "endpoint-name"},
		check: func(*cobra.Command) error {
			switch container {
			case containerInference:
			case containerStorage, containerImageBuild:
				if follow {
					return usageErrorf("--follow works with --container inference-server only")
				}
			default:
				return usageErrorf("--container %q: want inference-server (the scoring server's console), storage-initializer (fetching the model and code) or image-build (the log of the deployment's image build)", container)
			}
			return nil
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			o := api.LogOptions{Lines: lines, Instance: instance, Follow: follow, Container: container}
			switch {
			case instance == "all" || container == containerImageBuild:
				o.Instance = ""
			case instance == "":
				d, err := cn.api.GetDeployment(ctx, endpoint, name)
				if err != nil {
					return nil, err
				}
				if o.Instance = pickInstance(d.Instances); o.Instance != "" && len(d.Instances) > 1 {
					fmt.Fprintf(g.stderr, "Logs of instance %s (of %d); --instance NAME picks another, --instance all shows every one\n", o.Instance, len(d.Instances))
				}
			}
			rc, err := cn.api.DeploymentLogs(ctx, endpoint, name, o)
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			n, err := io.Copy(g.stdout, rc)
			if ctx.Err() != nil {
				return nil, nil
			}
			if err == nil && n == 0 && container == containerStorage {
				fmt.Fprintf(g.stderr, "No storage-initializer steps recorded for %s/%s%s yet\n", endpoint, name, strings.TrimSuffix(" instance "+o.Instance, " instance "))
			}
			return nil, err
		},
	})
}

// pickInstance chooses the instance whose logs get-logs shows when none is
// named: the first ready one by name, else the first by name; "" when
// there are none (the server then shows what it has).
func pickInstance(ins []api.Instance) string {
	sorted := append([]api.Instance(nil), ins...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, in := range sorted {
		if in.Ready {
			return in.Name
		}
	}
	if len(sorted) > 0 {
		return sorted[0].Name
	}
	return ""
}
