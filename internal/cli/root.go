// Package cli is the `plumbline` command line: Azure ML CLI v2's verbs and
// flags (`model`, `online-endpoint`, `online-deployment`) over plumbline's
// REST API, plus `serve`, `validate` and `apply`.
//
// Layout (after Nomad's command/): one file per verb, named <noun>_<verb>.go
// (endpoint_create.go, deployment_get_logs.go, model_download.go), with the
// noun's group command and shared helpers in <noun>.go. command.go holds the
// skeleton every API verb shares (flags → checks → connect → call → print);
// ensure.go the create-or-update logic that apply and up share.
//
// Exit codes: 0 success, 1 failure, 2 usage error. The package may import
// anything in plumbline; nothing imports it but cmd/plumbline.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/plumbline/plumbline/api"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=…".
var Version = "dev"

// usageError is a mistake in how the command was called (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// globals are the flags every command accepts.
type globals struct {
	server  string
	dataDir string
	caCert  string
	output  string
	query   string

	// az's common flags.
	debug, verbose, onlyErrors  bool
	resourceGroup, subscription string
	workspace                   string
	wsDone                      bool   // useWorkspace ran
	tokenFile                   string // the workspace profile's token file

	// stderr carries progress, notes and warnings (io.Discard with
	// --only-show-errors); errw is the real standard error, for errors,
	// prompts and --debug.
	stdout, stderr, errw io.Writer
	stdin                io.Reader
}

// Main runs the command line with args (without the program name) and
// returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr, errw: stderr, stdin: stdin}
	root := newRoot(g)
	args, err := normalizeArgs(root, args)
	if err != nil {
		fmt.Fprintln(stderr, "ERROR: "+err.Error())
		return ExitUsage
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err = root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "ERROR: "+strings.TrimSpace(err.Error()))
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return ExitUsage
	}
	return ExitFailure
}

// isCobraUsage recognises the one usage error cobra returns without a
// type: an unknown subcommand. (Flag errors come through SetFlagErrorFunc
// as usageError; argument checks are ours.)
func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command ")
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "plumbline",
		Short: "Deploy models to authenticated HTTPS scoring endpoints",
		Long: `plumbline deploys models — R plumber models first, any HTTP scoring server too — to
online endpoints with key or token auth, TLS, traffic split and mirroring, probes and logs,
speaking Azure ML's endpoint and deployment YAML and its CLI verbs.

Start a server with 'plumbline serve', then use the model, online-endpoint and
online-deployment commands as you would 'az ml'.`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{msg: err.Error() + "\nRun '" + c.CommandPath() + " --help' for usage."}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "control-plane URL (env PLUMBLINE_SERVER; default: the local server recorded in the data dir)")
	pf.StringVar(&g.dataDir, "data-dir", "", "data directory (env PLUMBLINE_DATA_DIR; default ~/.local/share/plumbline)")
	pf.StringVar(&g.caCert, "ca-cert", "", "CA certificate to trust for the server (env PLUMBLINE_CA_CERT; default: the data dir's local CA)")
	pf.StringVarP(&g.output, "output", "o", "", "output format: json, jsonc, yaml, yamlc, table, tsv or none (default: table on a terminal, json otherwise)")
	pf.BoolVar(&g.debug, "debug", false, "print every API call (method, URL, status, time) to standard error; never tokens")
	pf.BoolVar(&g.verbose, "verbose", false, "print which server and profile the command uses")
	pf.BoolVar(&g.onlyErrors, "only-show-errors", false, "print only errors on standard error: no progress, notes or warnings")
	root.PersistentPreRun = func(*cobra.Command, []string) {
		if g.onlyErrors {
			g.stderr = io.Discard
		}
	}
	pf.StringVar(&g.query, "query", "", `JMESPath query string, as az takes it: --query primaryKey, --query "[?provisioning_state=='Succeeded'].name"`)

	ml := &cobra.Command{
		Use:   "ml",
		Short: "The model, online-endpoint and online-deployment commands as az ml spells them",
		Long: `The same commands under the name az gives them, so that scripts written for Azure ML run
with alias az=plumbline:

  alias az=plumbline
  az ml online-endpoint invoke --name my-endpoint --request-file sample_request.json`,
	}
	for _, group := range azGroups {
		root.AddCommand(g.azGroup(group(g)))
		ml.AddCommand(g.azGroup(group(g)))
	}
	root.AddCommand(
		ml,
		newServeCmd(g),
		newValidateCmd(g),
		newApplyCmd(g),
		newUpCmd(g),
		newDownCmd(g),
		newInitCmd(g),
		newInfoCmd(g),
		newImageCmd(g),
		newFsckCmd(g),
		newGCCmd(g),
		newStopCmd(g),
		newTrustCmd(g),
	)
	return root
}

// azGroups make the command groups az ml has. Each is added twice, as
// `plumbline <group>` and `plumbline ml <group>`; a new az ml group (an
// environment verb, say) goes in this list.
var azGroups = []func(*globals) *cobra.Command{newModelCmd, newEnvironmentCmd, newEndpointCmd, newDeploymentCmd}

// azGroup gives an az ml group az's workspace flags: -g/--resource-group and
// --subscription are accepted and ignored (a note says so), -w/--workspace-name
// picks a server profile from the CLI config (see profile.go).
func (g *globals) azGroup(c *cobra.Command) *cobra.Command {
	pf := c.PersistentFlags()
	pf.StringVarP(&g.workspace, "workspace-name", "w", "", "server profile from the CLI config (~/.config/plumbline/config.yaml), as az picks a workspace")
	pf.StringVarP(&g.resourceGroup, "resource-group", "g", "", "accepted for az scripts and ignored: plumbline has no resource groups")
	pf.StringVar(&g.subscription, "subscription", "", "accepted for az scripts and ignored: plumbline has no subscriptions")
	return c
}

// printer returns the printer for the -o flag.
func (g *globals) printer() (*printer, error) {
	f, err := resolveFormat(g.output, g.stdout)
	if err != nil {
		return nil, err
	}
	p := &printer{w: g.stdout, format: f}
	if f == formatJSONC || f == formatYAMLC {
		p.color = isTerminal(g.stdout)
	}
	if g.query != "" {
		if p.query, err = compileQuery(g.query); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// exactArgs is cobra.ExactArgs whose error is a usage error.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", c.CommandPath(), strings.Join(args, " "))
	}
	return nil
}

// requireFlags fails with a usage error naming the missing flags.
func requireFlags(c *cobra.Command, names ...string) error {
	var missing []string
	for _, n := range names {
		if f := c.Flags().Lookup(n); f != nil && !f.Changed {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) > 0 {
		return usageErrorf("%s: missing %s", c.CommandPath(), strings.Join(missing, ", "))
	}
	return nil
}

// apiErrorf adds context to an API error without hiding its status.
func describe(err error) error {
	var ae *api.Error
	if errors.As(err, &ae) {
		if len(ae.Details) > 0 {
			lines := []string{ae.Message}
			for _, d := range ae.Details {
				lines = append(lines, "  "+d.Message)
			}
			return errors.New(strings.Join(lines, "\n"))
		}
	}
	return err
}
