package cli

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/internal/spec"
)

//go:embed all:templates
var templates embed.FS

func newInitCmd(g *globals) *cobra.Command {
	var name string
	c := &cobra.Command{
		Use:   "init r DIR",
		Short: "Scaffold a new R model folder in the seed's layout",
		Long: `Create DIR with the layout of Azure's "deploy an R model" article: docker-context/
(Dockerfile, start_plumber.R), src/plumber.R, train.R (writes models/crate.bin),
endpoint.yml, deployment.yml and sample_request.json. Then:

  cd DIR && Rscript train.R && plumbline up .`,
		Example: "  plumbline init r my-model",
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 2 || args[0] != "r" {
				return usageErrorf("usage: plumbline init r DIR (r is the only template)")
			}
			dir := args[1]
			if name == "" {
				name = sanitizeName(filepath.Base(filepath.Clean(dir)))
			}
			if err := spec.ValidateName("endpoint", name); err != nil {
				return usageErrorf("endpoint name %q (from the folder name; choose one with --name): %v", name, err)
			}
			if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
				return fmt.Errorf("%s exists and is not empty; choose a new folder", dir)
			}
			err := fs.WalkDir(templates, "templates/r", func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel := strings.TrimPrefix(strings.TrimPrefix(p, "templates/r"), "/")
				dst := filepath.Join(dir, rel)
				if d.IsDir() {
					return os.MkdirAll(dst, 0o755)
				}
				b, err := templates.ReadFile(p)
				if err != nil {
					return err
				}
				b = []byte(strings.ReplaceAll(string(b), "{{NAME}}", name))
				return os.WriteFile(dst, b, 0o644)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "Created %s for endpoint %s. Next:\n  cd %s && Rscript train.R && plumbline up .\n", dir, name, dir)
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "endpoint name (default: from the folder name)")
	return c
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// sanitizeName turns a folder name into an endpoint name.
func sanitizeName(s string) string {
	s = strings.Trim(nonName.ReplaceAllString(s, "-"), "-")
	s = strings.TrimLeft(s, "0123456789-")
	if len(s) > 32 {
		s = strings.TrimRight(s[:32], "-")
	}
	if len(s) < 3 {
		s = "r-endpoint"
	}
	return strings.ToLower(s)
}
