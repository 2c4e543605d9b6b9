package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func newModelShow(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:     "show",
		Short:   "Show one model version",
		Example: "  plumbline model show --name iris --version 1\n  plumbline model show --name iris --label latest",
	}
	ref := addModelRef(c)
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		check:    ref.check,
		call: func(ctx context.Context, cn *conn) (any, error) {
			m, err := ref.get(ctx, cn)
			if err != nil {
				return nil, err
			}
			return m, nil
		},
		cols: modelColumns,
	})
}
