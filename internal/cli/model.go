package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/spec"
)

var modelColumns = []column{
	field("NAME", "name"), field("VERSION", "version"), field("TYPE", "type"), field("PATH", "path"),
	column{header: "SIZE", cell: func(r map[string]any) string {
		if f, ok := r["size"].(float64); ok {
			return humanBytes(int64(f))
		}
		return ""
	}},
	column{header: "DIGEST", cell: func(r map[string]any) string { return shortDigest(cellString(r["digest"])) }},
	field("ARCHIVED", "archived"), field("CREATED", "created_at"),
}

func newModelCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "model", Short: "Register, list, show, download and archive models"}
	c.AddCommand(newModelCreate(g), newModelList(g), newModelShow(g), newModelDownload(g), newModelArchive(g, true), newModelArchive(g, false))
	return c
}

func newModelCreate(g *globals) *cobra.Command {
	var file, name, version, path, typ, desc string
	var prototype, inputSchema, extraCols, allNA string
	var tags, sets []string
	c := &cobra.Command{
		Use:   "create",
		Short: "Register a model version from a local file or folder",
		Example: `  plumbline model create --name iris --version 1 --path ./models
  plumbline model create -f model.yml`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			m := &spec.Model{}
			if file != "" {
				var err error
				if m, _, err = spec.LoadModel(file, sets); err != nil {
					return err
				}
			} else if len(sets) > 0 {
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
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			digest, err := cn.upload(ctx, g, "model", m.Path)
			if err != nil {
				return err
			}
			ic, err := inputContractFlags(prototype, inputSchema, extraCols, allNA)
			if err != nil {
				return err
			}
			out, created, err := cn.api.CreateModel(ctx, api.ModelCreate{
				Name: m.Name, Version: m.Version, Type: m.Type, Description: m.Description, Tags: m.Tags, Artifact: digest,
				InputContract: ic,
			})
			if err != nil {
				return describe(err)
			}
			if created {
				fmt.Fprintf(g.stderr, "Registered model %s version %s\n", out.Name, out.Version)
			} else {
				fmt.Fprintf(g.stderr, "Model %s version %s already registered with identical content\n", out.Name, out.Version)
			}
			return g.print(out, modelColumns)
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "model YAML file")
	f.StringVarP(&name, "name", "n", "", "model name")
	f.StringVarP(&version, "version", "v", "", "version (default: the next integer)")
	f.StringVarP(&path, "path", "p", "", "local file or folder with the model's files")
	f.StringVarP(&typ, "type", "t", "", "custom_model (default), mlflow_model or triton_model")
	f.StringVarP(&desc, "description", "d", "", "description")
	f.StringSliceVar(&tags, "tags", nil, "tags as key=value (repeatable)")
	f.StringArrayVar(&sets, "set", nil, "override a field of the file, e.g. --set version=2 (repeatable)")
	f.StringVar(&prototype, "prototype", "", "input contract: a JSON prototype file ({\"col\": \"numeric\"} or vetiver's /prototype output) the gateway enforces")
	f.StringVar(&inputSchema, "input-schema", "", "input contract: a JSON Schema file every request body must satisfy")
	f.StringVar(&extraCols, "extra-columns", "", "with --prototype: reject (default) or ignore columns the prototype does not name")
	f.StringVar(&allNA, "all-na-columns", "", "with --prototype: reject (default) or allow columns whose every value is null")
	return c
}

func parseTags(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--tags %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func newModelList(g *globals) *cobra.Command {
	var o api.ModelListOptions
	c := &cobra.Command{
		Use:   "list",
		Short: "List model versions",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ms, err := cn.api.ListModels(c.Context(), o)
			if err != nil {
				return describe(err)
			}
			if ms == nil {
				ms = []api.Model{}
			}
			return g.print(ms, modelColumns)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Name, "name", "n", "", "only this model's versions")
	f.BoolVar(&o.IncludeArchived, "include-archived", false, "include archived versions")
	f.BoolVar(&o.ArchivedOnly, "archived-only", false, "only archived versions")
	f.IntVarP(&o.MaxResults, "max-results", "r", 0, "at most this many")
	return c
}

func newModelShow(g *globals) *cobra.Command {
	var name, version, label string
	c := &cobra.Command{
		Use:     "show",
		Short:   "Show one model version",
		Example: "  plumbline model show --name iris --version 1\n  plumbline model show --name iris --label latest",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name"); err != nil {
				return err
			}
			v, err := versionOrLabel(version, label)
			if err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			m, err := cn.api.GetModel(c.Context(), name, v)
			if err != nil {
				return describe(err)
			}
			return g.print(m, modelColumns)
		},
	}
	f := c.Flags()
	f.StringVarP(&name, "name", "n", "", "model name")
	f.StringVarP(&version, "version", "v", "", "version")
	f.StringVarP(&label, "label", "l", "", "label: latest")
	return c
}

func versionOrLabel(version, label string) (string, error) {
	switch {
	case version != "" && label != "":
		return "", usageErrorf("give --version or --label, not both")
	case version != "":
		return version, nil
	case label == "latest":
		return "@latest", nil
	case label != "":
		return "", usageErrorf("--label %q: the only label is latest", label)
	}
	return "", usageErrorf("You must specify either version or label (--version N or --label latest)")
}

func newModelDownload(g *globals) *cobra.Command {
	var name, version, label, dest string
	c := &cobra.Command{
		Use:   "download",
		Short: "Download a model version's files into <download-path>/<name>/",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name"); err != nil {
				return err
			}
			v, err := versionOrLabel(version, label)
			if err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			m, err := cn.api.GetModel(ctx, name, v)
			if err != nil {
				return describe(err)
			}
			// The server's answer names folders on this disk: check it.
			if err := spec.ValidateName("model", m.Name); err != nil {
				return fmt.Errorf("the server returned a model name that is not safe as a folder name %q: %w", m.Name, err)
			}
			if m.Path != "" && (m.Path != filepath.Base(m.Path) || m.Path == ".." || m.Path == ".") {
				return fmt.Errorf("the server returned a model path that is not one file or folder name: %q", m.Path)
			}
			target := filepath.Join(dest, m.Name)
			if _, err := os.Stat(target); err == nil {
				return fmt.Errorf("%s already exists; remove it or choose another --download-path", target)
			}
			rc, err := cn.api.DownloadArtifact(ctx, m.Digest)
			if err != nil {
				return describe(err)
			}
			defer rc.Close()
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if err := registry.ExtractTar(ctx, rc, target, registry.Limits{}); err != nil {
				return fmt.Errorf("download model %s:%s: %w", m.Name, m.Version, err)
			}
			got, err := registry.LocalDigest(filepath.Join(target, m.Path))
			if err != nil {
				return err
			}
			if got != m.Digest {
				return fmt.Errorf("downloaded files hash to %s, want %s: the download is corrupt", got, m.Digest)
			}
			fmt.Fprintf(g.stderr, "Downloaded model %s version %s to %s (%d files, %s, verified %s)\n", m.Name, m.Version, filepath.Join(target, m.Path), m.Files, humanBytes(m.Size), shortDigest(m.Digest))
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&name, "name", "n", "", "model name")
	f.StringVarP(&version, "version", "v", "", "version")
	f.StringVarP(&label, "label", "l", "", "label: latest")
	f.StringVarP(&dest, "download-path", "p", ".", "folder to download into")
	return c
}

func newModelArchive(g *globals, archive bool) *cobra.Command {
	var name, version string
	use, short := "archive", "Archive a model version (or all versions): @latest skips it"
	if !archive {
		use, short = "restore", "Restore an archived model version (or all versions)"
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlags(c, "name"); err != nil {
				return err
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			if err := cn.api.ArchiveModel(c.Context(), name, version, archive); err != nil {
				return describe(err)
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
			return nil
		},
	}
	c.Flags().StringVarP(&name, "name", "n", "", "model name")
	c.Flags().StringVarP(&version, "version", "v", "", "version (default: all versions)")
	return c
}

// print prints v with the -o format.
func (g *globals) print(v any, cols []column) error {
	p, err := g.printer()
	if err != nil {
		return err
	}
	return p.print(v, cols)
}
