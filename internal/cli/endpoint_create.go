package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

func newEndpointCreate(g *globals) *cobra.Command {
	var file, name, authMode string
	var noWait bool
	var doc []byte
	c := &cobra.Command{
		Use:   "create",
		Short: "Create an endpoint (fails if it exists; see 'plumbline apply')",
		Example: `  plumbline online-endpoint create -f endpoint.yml
  plumbline online-endpoint create --name my-endpoint --auth-mode key`,
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "endpoint YAML file")
	f.StringVarP(&name, "name", "n", "", "endpoint name (overrides the file's)")
	f.StringVar(&authMode, "auth-mode", "", "key (default), aml_token or aad_token")
	u := addUpdateFlags(c, false)
	f.BoolVar(&noWait, "no-wait", false, "do not wait (endpoint creation is immediate; accepted for compatibility)")
	return g.apiVerb(c, &verb{
		check: func(*cobra.Command) error {
			if file != "" {
				ep, err := loadEndpointFile(g, file, u.updates(), name, authMode)
				if err != nil {
					return err
				}
				doc, err = json.Marshal(ep)
				return err
			}
			if name == "" {
				return usageErrorf("online-endpoint create needs -f endpoint.yml or --name")
			}
			m := map[string]any{"name": name}
			if authMode != "" {
				m["auth_mode"] = authMode
			}
			b, _ := json.Marshal(m)
			ep, err := parseEndpointBytes("--name", b, u.updates())
			if err != nil {
				return err
			}
			doc, err = json.Marshal(ep)
			return err
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			out, err := cn.api.CreateEndpoint(ctx, doc)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(g.stderr, "Created endpoint %s (auth_mode %s)\n", out.Name, out.AuthMode)
			return out, nil
		},
		cols: endpointColumns,
	})
}
