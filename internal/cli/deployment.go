package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
)

var deploymentColumns = []column{
	field("NAME", "name"), field("ENDPOINT", "endpoint_name"), field("STATE", "provisioning_state"),
	field("MODEL", "model"), field("RUNTIME", "runtime"),
	column{header: "READY", cell: func(r map[string]any) string {
		ins, _ := r["instances"].([]any)
		ready := 0
		for _, i := range ins {
			if m, ok := i.(map[string]any); ok && m["ready"] == true {
				ready++
			}
		}
		return fmt.Sprintf("%d/%s", ready, cellString(r["instance_count"]))
	}},
	field("REASON", "reason"),
}

func newDeploymentCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "online-deployment", Aliases: []string{"deployment"}, Short: "Manage online deployments: create, update, scale, logs"}
	c.AddCommand(newDeploymentCreate(g), newDeploymentUpdate(g), newDeploymentShow(g), newDeploymentList(g),
		newDeploymentDelete(g), newDeploymentLogs(g), newDeploymentEvents(g))
	return c
}

// loadDeployment parses and validates a deployment file with overrides
// (no server needed), then uploads its local paths (model, code, build
// context, conda file) and returns the document to send.
func (cn *conn) loadDeployment(ctx context.Context, g *globals, d *spec.Deployment) ([]byte, error) {
	if err := cn.uploadLocalPaths(ctx, g, d.LocalPaths()); err != nil {
		return nil, err
	}
	return json.Marshal(d)
}

// parseDeploymentFile reads a deployment file with --set, --name and
// --endpoint-name folded in, validates it and reports its notices.
func parseDeploymentFile(g *globals, file string, sets []string, name, endpoint string) (*spec.Deployment, error) {
	if name != "" {
		sets = append(sets, "name="+name)
	}
	if endpoint != "" {
		sets = append(sets, "endpoint_name="+endpoint)
	}
	d, doc, err := spec.LoadDeployment(file, sets)
	if err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if d.EndpointName == "" {
		return nil, usageErrorf("%s has no endpoint_name: add it to the file or pass --endpoint-name", file)
	}
	reportNotices(g.stderr, doc)
	return d, nil
}

// uploadLocalPaths uploads every local path and rewrites it to its digest.
func (cn *conn) uploadLocalPaths(ctx context.Context, g *globals, refs []spec.PathRef) error {
	for _, ref := range refs {
		if _, err := os.Stat(ref.Path); err != nil {
			return fmt.Errorf("%s: %s: %w", ref.Field, ref.Path, err)
		}
		digest, err := cn.upload(ctx, g, ref.Field, ref.Path)
		if err != nil {
			return err
		}
		ref.Set(digest)
	}
	return nil
}

func newDeploymentCreate(g *globals) *cobra.Command {
	var file, name, endpoint string
	var sets []string
	var allTraffic, noWait, skipValidation bool
	c := &cobra.Command{
		Use:   "create",
		Short: "Create a deployment (fails if it exists; see 'plumbline apply')",
		Example: `  plumbline online-deployment create -f deployment.yml --all-traffic
  plumbline online-deployment create -f green.yml --set instance_count=2`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "file"); err != nil {
				return err
			}
			if allTraffic && noWait {
				return usageErrorf("--all-traffic sets traffic after a successful creation and does not work with --no-wait")
			}
			d, err := parseDeploymentFile(g, file, sets, name, endpoint)
			if err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			doc, err := cn.loadDeployment(ctx, g, d)
			if err != nil {
				return err
			}
			start, mark := time.Now(), cn.eventMark(ctx, d.EndpointName)
			out, err := cn.api.CreateDeployment(ctx, d.EndpointName, doc)
			if err != nil {
				return describe(err)
			}
			if noWait {
				fmt.Fprintf(g.stderr, "Creating deployment %s/%s; follow with: plumbline online-deployment show -n %s -e %s\n", d.EndpointName, d.Name, d.Name, d.EndpointName)
				return g.print(out, deploymentColumns)
			}
			out, err = cn.waitDeployment(ctx, g, d.EndpointName, d.Name, start, mark)
			if err != nil {
				return err
			}
			if allTraffic {
				if err := cn.setAllTraffic(ctx, g, d.EndpointName, d.Name); err != nil {
					return err
				}
			}
			return g.print(out, deploymentColumns)
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "deployment YAML file")
	f.StringVarP(&name, "name", "n", "", "deployment name (overrides the file's)")
	f.StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name (overrides the file's)")
	f.BoolVar(&allTraffic, "all-traffic", false, "after a successful creation, send 100% of the endpoint's traffic to this deployment")
	f.BoolVar(&noWait, "no-wait", false, "return once creation has started")
	f.BoolVar(&skipValidation, "skip-script-validation", false, "accepted for compatibility (plumbline checks R scripts itself)")
	f.StringArrayVar(&sets, "set", nil, "override a field, e.g. --set instance_count=2 (repeatable)")
	return c
}

// setAllTraffic gives the deployment 100% of the endpoint's live traffic.
func (cn *conn) setAllTraffic(ctx context.Context, g *globals, endpoint, name string) error {
	doc, err := cn.api.GetEndpointDocument(ctx, endpoint)
	if err != nil {
		return describe(err)
	}
	ep, err := parseEndpointBytes("endpoint "+endpoint, doc, nil)
	if err != nil {
		return err
	}
	ep.Traffic = map[string]int{strings.ToLower(name): 100}
	delete(ep.MirrorTraffic, strings.ToLower(name))
	doc, err = json.Marshal(ep)
	if err != nil {
		return err
	}
	if _, err := cn.api.UpdateEndpoint(ctx, endpoint, doc); err != nil {
		return describe(err)
	}
	fmt.Fprintf(g.stderr, "Endpoint %s now sends 100%% of its traffic to %s\n", endpoint, name)
	return nil
}

// waitDeployment follows a deployment until it is Succeeded or Failed,
// printing its events as they happen.
// Only events after the mark (eventMark, taken before the change) print.
func (cn *conn) waitDeployment(ctx context.Context, g *globals, endpoint, name string, start time.Time, after int64) (*api.Deployment, error) {
	for {
		evs, err := cn.api.Events(ctx, api.EventFilter{Endpoint: endpoint, Deployment: name, AfterID: after})
		if err == nil {
			for _, e := range evs {
				after = e.ID
				who := e.Deployment
				if e.Instance != "" {
					who = e.Instance
				}
				fmt.Fprintf(g.stderr, "[%5.1fs] %-10s %-20s %s\n", time.Since(start).Seconds(), who, e.Reason, e.Message)
			}
		}
		d, err := cn.api.GetDeployment(ctx, endpoint, name)
		if err != nil {
			return nil, describe(err)
		}
		switch d.ProvisioningState {
		case api.StateSucceeded:
			fmt.Fprintf(g.stderr, "Deployment %s/%s Succeeded in %.1fs\n", endpoint, name, time.Since(start).Seconds())
			return d, nil
		case api.StateFailed:
			return d, fmt.Errorf("deployment %s/%s Failed: %s\nSee the logs with: plumbline online-deployment get-logs --name %s --endpoint-name %s", endpoint, name, d.Reason, name, endpoint)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

func newDeploymentUpdate(g *globals) *cobra.Command {
	var file, name, endpoint string
	var sets []string
	var noWait bool
	c := &cobra.Command{
		Use:   "update",
		Short: "Update a deployment: scale, new model or code (instances are replaced one at a time)",
		Example: `  plumbline online-deployment update --name blue --endpoint-name my-endpoint --set instance_count=2
  plumbline online-deployment update -f blue.yml`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			var fromFile *spec.Deployment
			if file != "" {
				d, err := parseDeploymentFile(g, file, sets, name, endpoint)
				if err != nil {
					return err
				}
				fromFile = d
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			var doc []byte
			if fromFile != nil {
				b, err := cn.loadDeployment(ctx, g, fromFile)
				if err != nil {
					return err
				}
				doc, name, endpoint = b, fromFile.Name, fromFile.EndpointName
			} else {
				if err := requireFlags(c, "name", "endpoint-name"); err != nil {
					return err
				}
				b, err := cn.api.GetDeploymentDocument(ctx, endpoint, name)
				if err != nil {
					return describe(err)
				}
				pd, err := spec.Parse("deployment "+name, b, spec.ParseOptions{Sets: sets, Expect: spec.KindDeployment})
				if err != nil {
					return err
				}
				if err := pd.Deployment.Validate(); err != nil {
					return err
				}
				if err := cn.uploadLocalPaths(ctx, g, pd.Deployment.LocalPaths()); err != nil {
					return err
				}
				if doc, err = json.Marshal(pd.Deployment); err != nil {
					return err
				}
			}
			start, mark := time.Now(), cn.eventMark(ctx, endpoint)
			out, err := cn.api.UpdateDeployment(ctx, endpoint, name, doc)
			if err != nil {
				return describe(err)
			}
			if noWait || out.ProvisioningState == api.StateSucceeded {
				return g.print(out, deploymentColumns)
			}
			out, err = cn.waitDeployment(ctx, g, endpoint, name, start, mark)
			if err != nil {
				return err
			}
			return g.print(out, deploymentColumns)
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "deployment YAML file")
	f.StringVarP(&name, "name", "n", "", "deployment name")
	f.StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	f.BoolVar(&noWait, "no-wait", false, "return once the update has started")
	f.StringArrayVar(&sets, "set", nil, "override a field, e.g. --set instance_count=2 (repeatable)")
	return c
}

func newDeploymentShow(g *globals) *cobra.Command {
	var name, endpoint string
	c := &cobra.Command{
		Use:   "show",
		Short: "Show a deployment: state, reason, instances and their readiness",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name", "endpoint-name"); err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			d, err := cn.api.GetDeployment(c.Context(), endpoint, name)
			if err != nil {
				return describe(err)
			}
			return g.print(d, deploymentColumns)
		},
	}
	c.Flags().StringVarP(&name, "name", "n", "", "deployment name")
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	return c
}

func newDeploymentList(g *globals) *cobra.Command {
	var endpoint string
	c := &cobra.Command{
		Use:   "list",
		Short: "List an endpoint's deployments",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "endpoint-name"); err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ds, err := cn.api.ListDeployments(c.Context(), endpoint)
			if err != nil {
				return describe(err)
			}
			if ds == nil {
				ds = []api.Deployment{}
			}
			return g.print(ds, deploymentColumns)
		},
	}
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	return c
}

func newDeploymentDelete(g *globals) *cobra.Command {
	var name, endpoint string
	var yes, noWait bool
	c := &cobra.Command{
		Use:   "delete",
		Short: "Delete a deployment (it must have no traffic): drains, then stops its instances",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name", "endpoint-name"); err != nil {
				return err
			}
			if err := confirm(g, yes, "Delete deployment "+name+" of endpoint "+endpoint+"?"); err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			if err := cn.api.DeleteDeployment(ctx, endpoint, name); err != nil {
				return describe(err)
			}
			if noWait {
				fmt.Fprintf(g.stderr, "Deleting deployment %s/%s\n", endpoint, name)
				return nil
			}
			start := time.Now()
			if err := waitGone(ctx, func(ctx context.Context) error { _, err := cn.api.GetDeployment(ctx, endpoint, name); return err }); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "Deleted deployment %s/%s (%.1fs)\n", endpoint, name, time.Since(start).Seconds())
			return nil
		},
	}
	c.Flags().StringVarP(&name, "name", "n", "", "deployment name")
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	c.Flags().BoolVar(&noWait, "no-wait", false, "return once deletion has started")
	return c
}

func newDeploymentLogs(g *globals) *cobra.Command {
	var name, endpoint, instance, container string
	var lines int
	var follow bool
	c := &cobra.Command{
		Use:   "get-logs",
		Short: "Print the console logs of a deployment's instances",
		Example: `  plumbline online-deployment get-logs --name blue --endpoint-name my-endpoint --lines 100
  plumbline online-deployment get-logs -n blue -e my-endpoint --instance blue-1 --follow`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name", "endpoint-name"); err != nil {
				return err
			}
			if container != "" && container != "inference-server" && container != "image-build" {
				return usageErrorf("--container %q: want inference-server (the instances' output) or image-build (the log of the deployment's image build)", container)
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			rc, err := cn.api.DeploymentLogs(c.Context(), endpoint, name, api.LogOptions{Lines: lines, Instance: instance, Follow: follow, Container: container})
			if err != nil {
				return describe(err)
			}
			defer rc.Close()
			_, err = io.Copy(g.stdout, rc)
			if c.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVarP(&name, "name", "n", "", "deployment name")
	f.StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	f.IntVarP(&lines, "lines", "l", 5000, "maximum number of lines to tail, per instance")
	f.StringVar(&instance, "instance", "", "only this instance (e.g. blue-1)")
	f.BoolVar(&follow, "follow", false, "keep printing new lines")
	f.StringVarP(&container, "container", "c", "", "inference-server (default), or image-build: the log of the deployment's image build")
	return c
}

func newDeploymentEvents(g *globals) *cobra.Command {
	var name, endpoint string
	var limit int
	c := &cobra.Command{
		Use:   "events",
		Short: "List a deployment's lifecycle events (started, ready, probe failed, restarted, exited, scaled)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name", "endpoint-name"); err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			evs, err := cn.api.Events(c.Context(), api.EventFilter{Endpoint: endpoint, Deployment: name, Limit: limit})
			if err != nil {
				return describe(err)
			}
			if evs == nil {
				evs = []api.Event{}
			}
			return g.print(evs, []column{field("TIME", "time"), field("INSTANCE", "instance"), field("TYPE", "type"), field("REASON", "reason"), field("MESSAGE", "message")})
		},
	}
	c.Flags().StringVarP(&name, "name", "n", "", "deployment name")
	c.Flags().StringVarP(&endpoint, "endpoint-name", "e", "", "endpoint name")
	c.Flags().IntVar(&limit, "limit", 100, "newest events to show")
	return c
}

// eventMark is the newest event id of the endpoint, taken before a change
// so that waitDeployment prints only what the change caused.
func (cn *conn) eventMark(ctx context.Context, endpoint string) int64 {
	evs, err := cn.api.Events(ctx, api.EventFilter{Endpoint: endpoint, Limit: 1})
	if err != nil || len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].ID
}
