package cli

import (
	"context"
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/internal/spec"
)

func newEndpointUpdate(g *globals) *cobra.Command {
	var file, name, traffic, mirror string
	var noWait bool
	var t, m map[string]int
	c := &cobra.Command{
		Use:   "update",
		Short: "Update an endpoint: traffic, mirror traffic, description, tags, auth mode",
		Example: `  plumbline online-endpoint update --name my-endpoint --traffic "blue=90 green=10"
  plumbline online-endpoint update --name my-endpoint --mirror-traffic "green=10"
  plumbline online-endpoint update -f endpoint.yml`,
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "endpoint YAML file")
	f.StringVarP(&name, "name", "n", "", "endpoint name")
	f.StringVarP(&traffic, "traffic", "r", "", `traffic split, space-separated pairs in quotes: "blue=90 green=10"`)
	f.StringVar(&mirror, "mirror-traffic", "", `mirror share to one deployment: "green=10" ("green=0" stops mirroring)`)
	u := addUpdateFlags(c, true)
	f.BoolVar(&noWait, "no-wait", false, "do not wait (updates are immediate; accepted for compatibility)")
	return g.apiVerb(c, &verb{
		check: func(c *cobra.Command) error {
			if file == "" && name == "" {
				return usageErrorf("online-endpoint update needs --name or -f endpoint.yml")
			}
			var err error
			if c.Flags().Changed("traffic") {
				if t, err = spec.ParseTraffic(traffic); err != nil {
					return usageErrorf("--traffic: %v", err)
				}
			}
			if c.Flags().Changed("mirror-traffic") {
				if m, err = spec.ParseTraffic(mirror); err != nil {
					return usageErrorf("--mirror-traffic: %v", err)
				}
			}
			return nil
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			var ep *spec.Endpoint
			var err error
			if file != "" {
				if ep, err = loadEndpointFile(g, file, u.updates(), name, ""); err != nil {
					return nil, err
				}
				name = ep.Name
			}
			cur, err := cn.api.GetEndpoint(ctx, name)
			if err != nil {
				return nil, err
			}
			if ep == nil {
				doc, err := cn.api.GetEndpointDocument(ctx, name)
				if err != nil {
					return nil, err
				}
				if ep, err = parseEndpointBytes("endpoint "+name, doc, u.updates()); err != nil {
					return nil, err
				}
			} else {
				keepLiveTraffic(ep, cur)
			}
			if t != nil {
				ep.Traffic = t
			}
			if m != nil {
				ep.MirrorTraffic = m
			}
			if err := ep.Validate(); err != nil {
				return nil, err
			}
			doc, err := json.Marshal(ep)
			if err != nil {
				return nil, err
			}
			return cn.api.UpdateEndpoint(ctx, name, doc)
		},
		cols: endpointColumns,
	})
}
