package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
)

var environmentColumns = []column{
	field("NAME", "name"), field("VERSION", "version"),
	column{header: "IMAGE / BUILD", cell: func(r map[string]any) string {
		if img := cellString(r["image"]); img != "" {
			return img
		}
		if b, ok := r["build"].(map[string]any); ok {
			return "build " + shortDigest(cellString(b["path"])) + " " + cellString(b["dockerfile_path"])
		}
		if x, ok := r["plumbline"].(map[string]any); ok {
			return "command " + cellString(x["command"])
		}
		return ""
	}},
	column{header: "DIGEST", cell: func(r map[string]any) string { return shortDigest(cellString(r["digest"])) }},
	field("ARCHIVED", "archived"), field("CREATED", "created_at"),
}

func newEnvironmentCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "environment", Short: "Register, list, show and archive environments (images, build contexts)"}
	c.AddCommand(newEnvironmentCreate(g), newEnvironmentList(g), newEnvironmentShow(g),
		newEnvironmentArchive(g, true), newEnvironmentArchive(g, false))
	return c
}

func newEnvironmentCreate(g *globals) *cobra.Command {
	var file, name, version, image, buildCtx, dockerfile, desc string
	var sets []string
	c := &cobra.Command{
		Use:   "create",
		Short: "Register an environment version from env.yml (image, build context, conda file, inference_config)",
		Example: `  plumbline environment create -f env.yml
  plumbline environment create --name r-env --build-context ./docker-context
  plumbline environment create --name py-env --image python:3.12-slim`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			e := &spec.Environment{}
			var doc *spec.Document
			if file != "" {
				var err error
				if e, doc, err = spec.LoadEnvironment(file, sets); err != nil {
					return err
				}
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
			if err := e.Validate(); err != nil {
				return err
			}
			if doc != nil {
				reportNotices(g.stderr, doc)
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			ctx := c.Context()
			if err := cn.uploadLocalPaths(ctx, g, e.LocalPaths()); err != nil {
				return err
			}
			body, err := json.Marshal(e)
			if err != nil {
				return err
			}
			out, created, err := cn.api.CreateEnvironment(ctx, body)
			if err != nil {
				return describe(err)
			}
			if created {
				fmt.Fprintf(g.stderr, "Registered environment %s version %s\n", out.Name, out.Version)
			} else {
				fmt.Fprintf(g.stderr, "Environment %s version %s already exists with the same content\n", out.Name, out.Version)
			}
			return g.print(out, environmentColumns)
		},
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
	return c
}

func newEnvironmentList(g *globals) *cobra.Command {
	var o api.EnvironmentListOptions
	c := &cobra.Command{
		Use:   "list",
		Short: "List environment versions",
		Args:  noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cn, err := g.connect()
			if err != nil {
				return err
			}
			es, err := cn.api.ListEnvironments(c.Context(), o)
			if err != nil {
				return describe(err)
			}
			if es == nil {
				es = []api.Environment{}
			}
			return g.print(es, environmentColumns)
		},
	}
	f := c.Flags()
	f.StringVarP(&o.Name, "name", "n", "", "only this environment's versions")
	f.BoolVar(&o.IncludeArchived, "include-archived", false, "include archived versions")
	f.BoolVar(&o.ArchivedOnly, "archived-only", false, "only archived versions")
	f.IntVarP(&o.MaxResults, "max-results", "r", 0, "at most this many")
	return c
}

func newEnvironmentShow(g *globals) *cobra.Command {
	var name, version, label string
	c := &cobra.Command{
		Use:     "show",
		Short:   "Show one environment version",
		Example: "  plumbline environment show --name r-env --version 1\n  plumbline environment show --name r-env --label latest",
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
			e, err := cn.api.GetEnvironment(c.Context(), name, v)
			if err != nil {
				return describe(err)
			}
			return g.print(e, environmentColumns)
		},
	}
	f := c.Flags()
	f.StringVarP(&name, "name", "n", "", "environment name")
	f.StringVarP(&version, "version", "v", "", "version")
	f.StringVarP(&label, "label", "l", "", "label: latest")
	return c
}

func newEnvironmentArchive(g *globals, archive bool) *cobra.Command {
	var name, version string
	use, short, verb := "archive", "Archive an environment version (or all versions): @latest skips it", "Archived"
	if !archive {
		use, short, verb = "restore", "Restore an archived environment version (or all versions)", "Restored"
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
			if err := cn.api.ArchiveEnvironment(c.Context(), name, version, archive); err != nil {
				return describe(err)
			}
			what := "all versions of environment " + name
			if version != "" {
				what = "environment " + name + " version " + version
			}
			fmt.Fprintf(g.stderr, "%s %s\n", verb, what)
			return nil
		},
	}
	c.Flags().StringVarP(&name, "name", "n", "", "environment name")
	c.Flags().StringVarP(&version, "version", "v", "", "version (default: all versions)")
	return c
}
