package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// envConfig names the CLI's config file (default
// $XDG_CONFIG_HOME/plumbline/config.yaml, else ~/.config/plumbline/config.yaml).
const envConfig = "PLUMBLINE_CONFIG"

// cliConfig is the CLI's config file: plumbline servers named like Azure ML
// workspaces, so that `-w NAME` (or a default) picks the server a command
// talks to, the way az's --workspace-name picks a workspace.
//
//	defaults:
//	  workspace: prod            # used when -w is not given
//	workspaces:
//	  prod:
//	    server: https://ml.example.com:8443
//	    ca_cert: /etc/plumbline/ca.crt   # optional: a CA to trust
//	    token_file: ~/.config/plumbline/prod.token   # mode 0600
//	  laptop:
//	    data_dir: ~/.local/share/plumbline   # a local server's data dir
type cliConfig struct {
	Defaults struct {
		// Workspace is the profile used when -w is not given; "" means the
		// local server.
		Workspace string `yaml:"workspace"`
	} `yaml:"defaults"`
	// Workspaces maps a name to a server.
	Workspaces map[string]profile `yaml:"workspaces"`

	path string
}

// profile is one named server. Give server (with token_file, and ca_cert
// when its certificate is not publicly trusted), or data_dir for a server
// on this machine.
type profile struct {
	// Server is the control-plane URL; "" means the data dir's local server.
	Server string `yaml:"server"`
	// CACert is a CA certificate file to trust; "" means the system's roots
	// (and, for a local server, its data dir's CA).
	CACert string `yaml:"ca_cert"`
	// TokenFile holds the server's admin token; it must not be readable by
	// others (mode 0600). "" means PLUMBLINE_TOKEN, or the data dir's token
	// for a local server.
	TokenFile string `yaml:"token_file"`
	// DataDir is a local server's data dir; "" means the default.
	DataDir string `yaml:"data_dir"`
}

// configPath is where the config file is looked for.
func configPath() string {
	if p := os.Getenv(envConfig); p != "" {
		return p
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "plumbline", "config.yaml")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config", "plumbline", "config.yaml")
}

// loadConfig reads the config file; a missing file is an empty config.
// Unknown keys are errors that name the file and line.
func loadConfig() (*cliConfig, error) {
	c := &cliConfig{path: configPath()}
	if c.path == "" {
		return c, nil
	}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the CLI config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("CLI config %s: %v (see docs/cli.md for its keys)", c.path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	for name, p := range c.Workspaces {
		if p.Server != "" && p.DataDir != "" {
			return nil, fmt.Errorf("CLI config %s: workspace %s: give server or data_dir, not both", c.path, name)
		}
		if p.Server == "" && p.TokenFile != "" {
			return nil, fmt.Errorf("CLI config %s: workspace %s: token_file goes with server (a local server's token is in its data dir)", c.path, name)
		}
	}
	if d := c.Defaults.Workspace; d != "" {
		if _, ok := c.Workspaces[d]; !ok {
			return nil, fmt.Errorf("CLI config %s: defaults.workspace %s is not among the workspaces (%s)", c.path, d, c.names())
		}
	}
	return c, nil
}

func (c *cliConfig) names() string {
	names := make([]string, 0, len(c.Workspaces))
	for n := range c.Workspaces {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// expandHome turns a leading ~/ into the home folder.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// readTokenFile reads an admin token file, refusing one that others can
// read.
func readTokenFile(path string) (string, error) {
	path = expandHome(path)
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s can be read by others (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}
