package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func newModelShow(g *globals) *cobra.Command {
	var v string
	c := &cobra.Command{
		Use:     "show",
		Short:   "Show one model version",
		Example: "  plumbline model show --name iris --version 1\n  plumbline model show --name iris --label latest",
	}
	ref := addModelRef(c)
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		check: func(*cobra.Command) (err error) {
			v, err = versionOrLabel(ref.version, ref.label)
			return err
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			m, err := cn.api.GetModel(ctx, ref.name, v)
			if err != nil {
				return nil, err
			}
			return m, nil
		},
		cols: modelColumns,
	})
}
