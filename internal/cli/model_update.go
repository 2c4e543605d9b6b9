package cli

import (
	"context"
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
)

func newModelUpdate(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "update",
		Short: "Change a model version's description, tags or stage (its files never change)",
		Long: `Change a model version's description, tags or stage with az's generic update arguments,
applied to the version as model show prints it. The files, name, version and type of a
registered version never change: register a new version for new files.`,
		Example: `  plumbline model update --name iris --version 1 --set description="the 2024 crate" stage=Production
  plumbline model update --name iris --label latest --set tags.team=ml --remove tags.draft`,
	}
	ref := addModelRef(c)
	u := addUpdateFlags(c, true)
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		check: func(c *cobra.Command) error {
			if len(u.ops) == 0 {
				return usageErrorf("model update needs a change: --set description=… , --set tags.KEY=VALUE, --set stage=…, --add or --remove")
			}
			return ref.check(c)
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			m, err := ref.get(ctx, cn)
			if err != nil {
				return nil, err
			}
			doc, err := json.Marshal(spec.Model{Name: m.Name, Version: m.Version, Path: m.Path, Type: m.Type,
				Description: m.Description, Tags: m.Tags, Stage: m.Stage})
			if err != nil {
				return nil, err
			}
			pd, err := spec.Parse("model "+m.Name+":"+m.Version, doc, spec.ParseOptions{Updates: u.updates(), Expect: spec.KindModel})
			if err != nil {
				return nil, err
			}
			n := pd.Model
			if n.Name != m.Name || n.Version != m.Version || n.Path != m.Path || n.Type != m.Type {
				return nil, usageErrorf("model update changes only description, tags and stage; register a new version (model create) for another name, version, path or type")
			}
			return cn.api.UpdateModel(ctx, m.Name, m.Version, api.ModelUpdate{Description: n.Description, Tags: n.Tags, Stage: n.Stage})
		},
		cols: modelColumns,
	})
}
