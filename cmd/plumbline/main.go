// Command plumbline deploys models — R plumber models first, any HTTP scoring
// server too — to authenticated HTTPS online endpoints, speaking Azure ML's
// endpoint and deployment YAML and CLI verbs. See `plumbline --help`.
package main

import (
	"context"
	"os"

	"github.com/plumbline/plumbline/internal/cli"
	"github.com/plumbline/plumbline/internal/rworker"
)

func main() {
	// The lean R runtime's supervisor, run by the process driver; not a
	// user command.
	if len(os.Args) > 1 && os.Args[1] == rworker.Command {
		os.Exit(rworker.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
