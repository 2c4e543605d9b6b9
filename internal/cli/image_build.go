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
)

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
