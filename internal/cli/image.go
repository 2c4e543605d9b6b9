package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/spec"
)

func newImageCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "image", Short: "Build container images on the server's engine (serve --driver docker)"}
	c.AddCommand(newImageBuild(g))
	return c
}

func newImageBuild(g *globals) *cobra.Command {
	var tags []string
	var dockerfile string
	c := &cobra.Command{
		Use:   "build DIR -t NAME:TAG",
		Short: "Build an image from a Docker build context on the server's container engine (like az acr build)",
		Long: `Upload the build context DIR and build it on the server's container engine (Docker or
Podman, with serve --driver docker), printing the build's output as it comes. The image can
then be a deployment's environment.image. Without a registry, FROM images must already be on
the engine (scripts/r-base-image.sh makes rstudio/plumber:latest from Debian packages).`,
		Example: "  plumbline image build ./docker-context -t myregistry.azurecr.io/r-iris-plumber:1",
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("image build takes one build context folder, got %d", len(args))
			}
			if len(tags) == 0 {
				return usageErrorf("give the image a tag: -t name:tag")
			}
			cn, err := g.connect()
			if err != nil {
				return err
			}
			return cn.buildImage(c.Context(), g, args[0], dockerfile, tags)
		},
	}
	c.Flags().StringArrayVarP(&tags, "tag", "t", nil, "image name and tag (repeatable)")
	c.Flags().StringVarP(&dockerfile, "file", "f", "", "Dockerfile, relative to DIR (default Dockerfile)")
	return c
}

// buildImage uploads dir and builds it on the server, printing the build's
// lines to stderr.
func (cn *conn) buildImage(ctx context.Context, g *globals, dir, dockerfile string, tags []string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return usageErrorf("%s is not a folder: give the build context folder", dir)
	}
	df := dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	if _, err := os.Stat(filepath.Join(dir, df)); err != nil {
		return fmt.Errorf("no %s in the build context %s: %w", df, dir, err)
	}
	digest, err := cn.upload(ctx, g, "build context", dir)
	if err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(g.stderr, "Building %s from %s on the server's container engine\n", strings.Join(tags, ", "), relPath(dir))
	err = cn.api.BuildImage(ctx, api.ImageBuild{Context: digest, Dockerfile: dockerfile, Tags: tags}, func(line string) {
		fmt.Fprintf(g.stderr, "  %s\n", line)
	})
	if err != nil {
		return describe(err)
	}
	fmt.Fprintf(g.stderr, "Built %s in %.1fs\n", strings.Join(tags, ", "), time.Since(start).Seconds())
	return nil
}

// buildSeedImage builds DIR/docker-context (the seed's layout) with the
// deployment's environment.image tag when the server's engine lacks that
// image, as `az acr build ./docker-context -t IMAGE` does before Azure's
// deployment.
func (cn *conn) buildSeedImage(ctx context.Context, g *globals, dir string, d *spec.Deployment, step func(string, ...any)) error {
	if d.Environment == nil || d.Environment.Inline == nil {
		return nil
	}
	env := d.Environment.Inline
	if env.Image == "" || env.Build != nil {
		return nil
	}
	has, err := cn.api.ImageExists(ctx, env.Image)
	if err != nil {
		return describe(err)
	}
	if has {
		step("image %s is on the server's container engine", env.Image)
		return nil
	}
	buildDir := filepath.Join(dir, "docker-context")
	if _, err := os.Stat(filepath.Join(buildDir, "Dockerfile")); err != nil {
		return fmt.Errorf("deployment %s runs image %s, which the server's container engine does not have, and there is no %s to build it from; build it (plumbline image build DIR -t %s) or load it", d.Name, env.Image, filepath.Join(buildDir, "Dockerfile"), env.Image)
	}
	step("image %s is not on the server's container engine: building %s", env.Image, relPath(buildDir))
	return cn.buildImage(ctx, g, buildDir, "", []string{env.Image})
}
