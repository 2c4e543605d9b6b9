package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func newEnvironmentShow(g *globals) *cobra.Command {
	var v string
	c := &cobra.Command{
		Use:     "show",
		Short:   "Show one environment version and the deployments using it",
		Example: "  plumbline environment show --name r-env --version 1\n  plumbline environment show --name r-env --label latest",
	}
	ref := addModelRef(c)
	c.Flags().Lookup("name").Usage = "environment name"
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		check: func(*cobra.Command) (err error) {
			v, err = versionOrLabel(ref.version, ref.label)
			return err
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			e, err := cn.api.GetEnvironment(ctx, ref.name, v)
			if err != nil {
				return nil, err
			}
			return e, nil
		},
		cols: environmentColumns,
	})
}
