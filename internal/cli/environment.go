package cli

import "github.com/spf13/cobra"

// The environment verbs: environment_create.go, environment_list.go,
// environment_show.go, environment_archive.go.

var environmentColumns = []column{
	field("NAME", "name"), field("VERSION", "version"),
	{header: "IMAGE / BUILD", cell: func(r map[string]any) string {
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
	{header: "DIGEST", cell: func(r map[string]any) string { return shortDigest(cellString(r["digest"])) }},
	field("ARCHIVED", "archived"), field("CREATED", "created_at"),
}

func newEnvironmentCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "environment", Short: "Register, list, show and archive environments (images, build contexts)"}
	c.AddCommand(newEnvironmentCreate(g), newEnvironmentList(g), newEnvironmentShow(g),
		newEnvironmentArchive(g, true), newEnvironmentArchive(g, false))
	return c
}
