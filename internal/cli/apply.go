package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
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
					digest, err := cn.upload(ctx, g, "model", m.Path)
					if err != nil {
						return err
					}
					out, created, err := cn.api.CreateModel(ctx, api.ModelCreate{Name: m.Name, Version: m.Version, Type: m.Type, Description: m.Description, Tags: m.Tags, Artifact: digest})
					if err != nil {
						return describe(err)
					}
					fmt.Fprintf(g.stderr, "%s: model %s:%s %s\n", it.file, out.Name, out.Version, map[bool]string{true: "registered", false: "unchanged"}[created])
				case spec.KindEndpoint:
					ep := it.doc.Endpoint
					cur, err := cn.api.GetEndpoint(ctx, ep.Name)
					switch {
					case api.IsNotFound(err):
						doc, _ := json.Marshal(ep)
						if _, err := cn.api.CreateEndpoint(ctx, doc); err != nil {
							return describe(err)
						}
						fmt.Fprintf(g.stderr, "%s: endpoint %s created\n", it.file, ep.Name)
					case err != nil:
						return describe(err)
					default:
						if ep.Traffic == nil && ep.MirrorTraffic == nil {
							ep.Traffic, ep.MirrorTraffic = nonZeroTraffic(cur.Traffic), nonZeroTraffic(cur.MirrorTraffic)
						}
						doc, _ := json.Marshal(ep)
						if _, err := cn.api.UpdateEndpoint(ctx, ep.Name, doc); err != nil {
							return describe(err)
						}
						fmt.Fprintf(g.stderr, "%s: endpoint %s updated\n", it.file, ep.Name)
					}
				case spec.KindDeployment:
					d := it.doc.Deployment
					if err := cn.uploadLocalPaths(ctx, g, d.LocalPaths()); err != nil {
						return err
					}
					doc, _ := json.Marshal(d)
					start, mark := time.Now(), cn.eventMark(ctx, d.EndpointName)
					_, err := cn.api.GetDeployment(ctx, d.EndpointName, d.Name)
					var out *api.Deployment
					switch {
					case api.IsNotFound(err):
						out, err = cn.api.CreateDeployment(ctx, d.EndpointName, doc)
					case err != nil:
					default:
						out, err = cn.api.UpdateDeployment(ctx, d.EndpointName, d.Name, doc)
					}
					if err != nil {
						return describe(err)
					}
					if !noWait && out.ProvisioningState != api.StateSucceeded {
						if _, err := cn.waitDeployment(ctx, g, d.EndpointName, d.Name, start, mark); err != nil {
							return err
						}
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
	c.Flags().StringArrayVar(&sets, "set", nil, "override a field in every file (repeatable)")
	c.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for deployments to finish")
	return c
}
