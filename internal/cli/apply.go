package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/spec"
)

func newApplyCmd(g *globals) *cobra.Command {
	var files, sets []string
	var noWait bool
	c := &cobra.Command{
		Use:   "apply -f FILE...",
		Short: "Create or update models, endpoints and deployments from files (idempotent)",
		Long: `Create what does not exist and update what does, so pipelines can run the same command
every time. Files are applied in order models, endpoints, deployments. An endpoint file that
sets no traffic keeps the endpoint's live traffic. A deployment whose resolved content is
unchanged is left alone.`,
		Example: "  plumbline apply -f endpoint.yml -f deployment.yml",
		RunE: func(c *cobra.Command, args []string) error {
			files = append(files, args...)
			if len(files) == 0 {
				return usageErrorf("apply needs at least one file: plumbline apply -f FILE")
			}
			type item struct {
				file string
				doc  *spec.Document
			}
			var items []item
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				doc, err := spec.Parse(f, data, spec.ParseOptions{BaseDir: filepath.Dir(f), Sets: sets})
				if err != nil {
					return err
				}
				if err := doc.Validate(); err != nil {
					return err
				}
				items = append(items, item{f, doc})
			}
			order := map[spec.Kind]int{spec.KindModel: 0, spec.KindEnvironment: 1, spec.KindConda: 1, spec.KindEndpoint: 2, spec.KindDeployment: 3}
			sort.SliceStable(items, func(i, j int) bool { return order[items[i].doc.Kind] < order[items[j].doc.Kind] })

			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			for _, it := range items {
				reportNotices(g.stderr, it.doc)
				switch it.doc.Kind {
				case spec.KindModel:
					m := it.doc.Model
					if m.Version == "" {
						// Idempotent: no version and the newest version has
						// these very files → nothing to register.
						if local, err := registry.LocalDigest(m.Path); err == nil {
							if latest, err := cn.api.GetModel(ctx, m.Name, "@latest"); err == nil && latest.Digest == local {
								fmt.Fprintf(g.stderr, "%s: model %s:%s unchanged\n", it.file, latest.Name, latest.Version)
								continue
							}
						}
					}
					out, created, err := cn.createModel(ctx, g, m, nil)
					if err != nil {
						return err
					}
					fmt.Fprintf(g.stderr, "%s: model %s:%s %s\n", it.file, out.Name, out.Version, map[bool]string{true: "registered", false: "unchanged"}[created])
				case spec.KindEndpoint:
					created, err := cn.ensureEndpoint(ctx, it.doc.Endpoint)
					if err != nil {
						return err
					}
					fmt.Fprintf(g.stderr, "%s: endpoint %s %s\n", it.file, it.doc.Endpoint.Name, map[bool]string{true: "created", false: "updated"}[created])
				case spec.KindDeployment:
					d := it.doc.Deployment
					if _, err := cn.ensureDeployment(ctx, g, d, time.Now(), noWait, nil); err != nil {
						return err
					}
					fmt.Fprintf(g.stderr, "%s: deployment %s/%s %s\n", it.file, d.EndpointName, d.Name, "applied")
				default:
					fmt.Fprintf(g.stderr, "%s: %s documents are used through a deployment; nothing to apply\n", it.file, it.doc.Kind)
				}
			}
			return nil
		},
	}
	c.Flags().StringArrayVarP(&files, "file", "f", nil, "file to apply (repeatable)")
	wordsFlag(c.Flags(), &sets, "set", "", "override a field in every file: --set a.b=VALUE [c=VALUE …] (repeatable)")
	c.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for deployments to finish")
	return c
}
