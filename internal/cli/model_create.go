package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
)

func newModelCreate(g *globals) *cobra.Command {
	var file, name, version, path, typ, desc, stage string
	var prototype, inputSchema, extraCols, allNA string
	var tags []string
	var ic json.RawMessage
	m := &spec.Model{}
	c := &cobra.Command{
		Use:   "create",
		Short: "Register a model version from a local file or folder",
		Example: `  plumbline model create --name iris --version 1 --path ./models
  plumbline model create -f model.yml`,
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "model YAML file")
	f.StringVarP(&name, "name", "n", "", "model name")
	f.StringVarP(&version, "version", "v", "", "version (default: the next integer)")
	f.StringVarP(&path, "path", "p", "", "local file or folder with the model's files")
	f.StringVarP(&typ, "type", "t", "", "custom_model (default), mlflow_model or triton_model")
	f.StringVarP(&desc, "description", "d", "", "description")
	f.StringVar(&stage, "stage", "", "lifecycle stage, free-form: Development, Production…")
	wordsFlag(f, &tags, "tags", "", "space-separated tags: --tags key=value [key=value …]")
	u := addUpdateFlags(c, false)
	f.Bool("no-wait", false, "accepted for az scripts: registering is immediate")
	f.StringVar(&prototype, "prototype", "", "input contract: a JSON prototype file ({\"col\": \"numeric\"} or vetiver's /prototype output) the gateway enforces")
	f.StringVar(&inputSchema, "input-schema", "", "input contract: a JSON Schema file every request body must satisfy")
	f.StringVar(&extraCols, "extra-columns", "", "with --prototype: reject (default) or ignore columns the prototype does not name")
	f.StringVar(&allNA, "all-na-columns", "", "with --prototype: reject (default) or allow columns whose every value is null")
	return g.apiVerb(c, &verb{
		check: func(c *cobra.Command) error {
			if file != "" {
				doc, err := spec.Load(file, spec.ParseOptions{Updates: u.updates(), Expect: spec.KindModel})
				if err != nil {
					return err
				}
				m = doc.Model
			} else if len(u.ops) > 0 {
				return usageErrorf("--set needs -f/--file")
			}
			if name != "" {
				m.Name = name
			}
			if version != "" {
				m.Version = version
			}
			if path != "" {
				abs, err := filepath.Abs(path)
				if err != nil {
					return err
				}
				m.Path = abs
			}
			if typ != "" {
				m.Type = typ
			}
			if desc != "" {
				m.Description = desc
			}
			if stage != "" {
				m.Stage = stage
			}
			if len(tags) > 0 {
				t, err := parseTags(tags)
				if err != nil {
					return err
				}
				m.Tags = t
			}
			if m.Name == "" || m.Path == "" {
				return usageErrorf("model create needs --name and --path (or -f model.yml with name and path)")
			}
			if err := spec.ValidateName("model", m.Name); err != nil {
				return err
			}
			if _, err := os.Stat(m.Path); err != nil {
				return fmt.Errorf("model path %s: %w", m.Path, err)
			}
			var err error
			ic, err = inputContractFlags(prototype, inputSchema, extraCols, allNA)
			return err
		},
		call: func(ctx context.Context, cn *conn) (any, error) {
			out, created, err := cn.createModel(ctx, g, m, ic)
			if err != nil {
				return nil, err
			}
			if created {
				fmt.Fprintf(g.stderr, "Registered model %s version %s\n", out.Name, out.Version)
				printModelWarnings(g, out)
			} else {
				fmt.Fprintf(g.stderr, "Model %s version %s already registered with identical content\n", out.Name, out.Version)
			}
			return out, nil
		},
		cols: modelColumns,
	})
}

// createModel uploads m's files (unless the server has them) and registers
// them as a version of m.
func (cn *conn) createModel(ctx context.Context, g *globals, m *spec.Model, ic json.RawMessage) (*api.Model, bool, error) {
	digest, err := cn.upload(ctx, g, "model", m.Path)
	if err != nil {
		return nil, false, err
	}
	out, created, err := cn.api.CreateModel(ctx, api.ModelCreate{
		Name: m.Name, Version: m.Version, Type: m.Type, Description: m.Description, Tags: m.Tags, Artifact: digest, Stage: m.Stage,
		InputContract: ic,
	})
	if err != nil {
		return nil, false, describe(err)
	}
	return out, created, nil
}

// printModelWarnings prints what the server found wrong with a model
// version's files when it registered them.
func printModelWarnings(g *globals, m *api.Model) {
	for _, w := range m.Warnings {
		fmt.Fprintf(g.stderr, "warning: %s\n", w)
	}
}
