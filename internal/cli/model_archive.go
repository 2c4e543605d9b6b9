package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

// newModelArchive is `model archive` (archive true) or `model restore`.
func newModelArchive(g *globals, archive bool) *cobra.Command {
	var name, version, label string
	use, short := "archive", "Archive a model version (or all versions): @latest skips it"
	if !archive {
		use, short = "restore", "Restore an archived model version (or all versions)"
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

--label latest names the newest version that is not archived when archiving, and the newest
version, archived or not, when restoring.`,
		Example: fmt.Sprintf("  plumbline model %s --name iris --version 2\n  plumbline model %s --name iris --label latest", use, use),
	}
	c.Flags().StringVarP(&name, "name", "n", "", "model name")
	c.Flags().StringVarP(&version, "version", "v", "", "version (default: all versions)")
	c.Flags().StringVarP(&label, "label", "l", "", "label: latest")
	return g.apiVerb(c, &verb{
		required: []string{"name"},
		check: func(*cobra.Command) error {
			if label == "" {
				return nil
			}
			_, err := versionOrLabel(version, label)
			return err
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			if label != "" {
				v, err := cn.latestVersion(ctx, name, !archive)
				if err != nil {
					return nil, err
				}
				version = v
			}
			if err := cn.api.ArchiveModel(ctx, name, version, archive); err != nil {
				return nil, err
			}
			what := "all versions of model " + name
			if version != "" {
				what = "model " + name + " version " + version
			}
			verb := "Archived"
			if !archive {
				verb = "Restored"
			}
			fmt.Fprintf(g.stderr, "%s %s\n", verb, what)
			return nil, nil
		},
	})
}

// latestVersion is the version the label latest names: the newest version
// that is not archived, or with includeArchived the newest of all.
func (cn *conn) latestVersion(ctx context.Context, name string, includeArchived bool) (string, error) {
	if !includeArchived {
		m, err := cn.api.GetModel(ctx, name, "@latest")
		if err != nil {
			return "", err
		}
		return m.Version, nil
	}
	ms, err := cn.api.ListModels(ctx, api.ModelListOptions{Name: name, IncludeArchived: true, MaxResults: 1})
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		return "", fmt.Errorf("model %s has no versions", name)
	}
	return ms[0].Version, nil
}
