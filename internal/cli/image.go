package cli

import (
	"github.com/spf13/cobra"
)

// The image verbs: image_build.go. up --driver docker builds the seed's
// docker-context with them (up_image.go).

func newImageCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "image", Short: "Build container images on the server's engine (serve --driver docker)"}
	c.AddCommand(newImageBuild(g))
	return c
}
