// Command plumbline deploys models — R plumber models first, any HTTP scoring
// server too — to authenticated HTTPS online endpoints, speaking Azure ML's
// endpoint and deployment YAML and CLI verbs. See `plumbline --help`.
package main

import (
	"context"
	"os"

	"github.com/plumbline/plumbline/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
