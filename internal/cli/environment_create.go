package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/internal/spec"
)

func newEnvironmentCreate(g *globals) *cobra.Command {
	var file, name, version, image, buildCtx, dockerfile, desc string
	var sets []string
	e := &spec.Environment{}
	c := &cobra.Command{
		Use:   "create",
		Short: "Register an environment version from env.yml (image, build context, conda file, inference_config)",
		Example: `  plumbline environment create -f env.yml
  plumbline environment create --name r-env --build-context ./docker-context
  plumbline environment create --name py-env --image python:3.12-slim`,
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "environment YAML file")
	f.StringVarP(&name, "name", "n", "", "name (overrides the file's)")
	f.StringVarP(&version, "version", "v", "", "version (default: the next integer)")
	f.StringVar(&image, "image", "", "container image")
	f.StringVar(&buildCtx, "build-context", "", "Docker build context folder (instead of --image)")
	f.StringVar(&dockerfile, "dockerfile-path", "", "Dockerfile inside the build context (default Dockerfile)")
	f.StringVar(&desc, "description", "", "description")
	f.StringArrayVar(&sets, "set", nil, "override a field of the file, e.g. --set image=x:1 (repeatable)")
	return g.apiVerb(c, &verb{
		check: func(*cobra.Command) error {
			if file != "" {
				var doc *spec.Document
				var err error
				if e, doc, err = spec.LoadEnvironment(file, sets); err != nil {
					return err
				}
				defer reportNotices(g.stderr, doc)
			} else if len(sets) > 0 {
				return usageErrorf("--set needs -f/--file")
			}
			if name != "" {
				e.Name = name
			}
			if version != "" {
				e.Version = version
			}
			if desc != "" {
				e.Description = desc
			}
			if image != "" {
				e.Image = image
			}
			if buildCtx != "" {
				abs, err := filepath.Abs(buildCtx)
				if err != nil {
					return err
				}
				e.Build = &spec.BuildContext{Path: abs, DockerfilePath: dockerfile}
			}
			return e.Validate()
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			if err := cn.uploadLocalPaths(ctx, g, e.LocalPaths()); err != nil {
				return nil, err
			}
			body, err := json.Marshal(e)
			if err != nil {
				return nil, err
			}
			out, created, err := cn.api.CreateEnvironment(ctx, body)
			if err != nil {
				return nil, err
			}
			if created {
				fmt.Fprintf(g.stderr, "Registered environment %s version %s\n", out.Name, out.Version)
			} else {
				fmt.Fprintf(g.stderr, "Environment %s version %s already exists with the same content\n", out.Name, out.Version)
			}
			return out, nil
		},
		cols: environmentColumns,
	})
}
