package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/datadir"
)

// cliWithConfig runs the command line against the test server the way a
// user with a CLI config file does: the config at PLUMBLINE_CONFIG holds
// cfg, and no --data-dir, server or token comes from flags or the
// environment, so only the config can lead the command to the server.
func cliWithConfig(t *testing.T, cfg string, args ...string) result {
	t.Helper()
	testDataDir(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envConfig, path)
	// The default data dir would be this user's own: point it somewhere
	// empty so a developer's local server cannot answer.
	t.Setenv("PLUMBLINE_DATA_DIR", filepath.Join(t.TempDir(), "no-server-here"))
	for _, e := range []string{envServer, envToken, envCACert} {
		t.Setenv(e, "")
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := Main(ctx, args, strings.NewReader(""), &out, &errb)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// TestWorkspaceProfiles: -w (and defaults.workspace) pick the server a
// command talks to from the CLI config, as az's --workspace-name picks a
// workspace; a remote profile's token file must be private; a name that is
// not there is a usage error naming the ones that are.
func TestWorkspaceProfiles(t *testing.T) {
	dd := &datadir.Dir{Root: testDataDir(t)}
	st, err := dd.ReadServerState()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(dd.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "prod.token")
	if err := os.WriteFile(tokenFile, tok, 0o600); err != nil {
		t.Fatal(err)
	}
	ca := st.CACert
	if ca == "" {
		ca = dd.CACertPath()
	}
	cfg := `defaults:
  workspace: laptop
workspaces:
  prod:
    server: ` + st.URL + `
    ca_cert: ` + ca + `
    token_file: ` + tokenFile + `
  laptop:
    data_dir: ` + dd.Root + `
`
	mustCLI(t, "model", "create", "--name", "profile-model", "--version", "1", "--path", filepath.Join("testdata", "fixture", "model"))

	t.Run("remote profile by -w", func(t *testing.T) {
		r := cliWithConfig(t, cfg, "ml", "model", "show", "--name", "profile-model", "--version", "1",
			"-w", "prod", "-g", "my-rg", "--query", "name", "-o", "tsv")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "profile-model" {
			t.Fatalf("exit %d, stdout %q, stderr %s; want the model from the prod workspace's server", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "ignores Azure's --resource-group my-rg") {
			t.Errorf("stderr %q: want a note that the resource group is ignored", r.stderr)
		}
	})
	t.Run("default workspace", func(t *testing.T) {
		r := cliWithConfig(t, cfg, "model", "list", "--name", "profile-model", "--query", "[].version", "-o", "tsv")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "1" {
			t.Fatalf("exit %d, stdout %q, stderr %s; want version 1 through defaults.workspace (a data_dir profile)", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("token file others can read", func(t *testing.T) {
		if err := os.Chmod(tokenFile, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(tokenFile, 0o600)
		r := cliWithConfig(t, cfg, "model", "list", "-w", "prod")
		if r.code == 0 || !strings.Contains(r.stderr, "chmod 600 "+tokenFile) {
			t.Errorf("exit %d, stderr %q; want a refusal that says to chmod 600 the token file", r.code, r.stderr)
		}
	})
	t.Run("unknown workspace", func(t *testing.T) {
		r := cliWithConfig(t, cfg, "model", "list", "-w", "staging")
		if r.code != 2 || !strings.Contains(r.stderr, "no such workspace") || !strings.Contains(r.stderr, "laptop, prod") {
			t.Errorf("exit %d, stderr %q; want 2 and the workspaces there are", r.code, r.stderr)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		r := cliWithConfig(t, "workspaces:\n  prod:\n    server: https://x\n    data_dir: /tmp\n", "model", "list", "-w", "prod")
		if r.code == 0 || !strings.Contains(r.stderr, "give server or data_dir, not both") {
			t.Errorf("exit %d, stderr %q; want the config's mistake named", r.code, r.stderr)
		}
		r = cliWithConfig(t, "workspace:\n  prod: {}\n", "model", "list")
		if r.code == 0 || !strings.Contains(r.stderr, "line 1") {
			t.Errorf("exit %d, stderr %q; want an unknown key named with its line", r.code, r.stderr)
		}
	})
}

// TestModelDownloadAndLabels: model download puts the files in
// <download-path>/<name>/ inside a folder that already exists (as Azure
// does), says so when they are already there, and archive/restore --label
// latest act on the newest version.
func TestModelDownloadAndLabels(t *testing.T) {
	model := filepath.Join("testdata", "fixture", "model")
	mustCLI(t, "model", "create", "--name", "label-model", "--version", "1", "--path", model)
	mustCLI(t, "model", "create", "--name", "label-model", "--version", "2", "--path", model, "--description", "second")

	t.Run("download into an existing folder", func(t *testing.T) {
		dest := t.TempDir()
		keep := filepath.Join(dest, "notes.txt")
		if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustCLI(t, "model", "download", "--name", "label-model", "--version", "1", "--download-path", dest)
		want, err := os.ReadFile(filepath.Join(model, "weights.json"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dest, "label-model", "model", "weights.json"))
		if err != nil {
			t.Fatalf("the model's files are not in <download-path>/<name>/<path>: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("downloaded weights.json differs from the registered one")
		}
		if b, err := os.ReadFile(keep); err != nil || string(b) != "mine" {
			t.Errorf("a file already in the download folder was touched: %q %v", b, err)
		}
		r := mustCLI(t, "model", "download", "--name", "label-model", "--version", "1", "--download-path", dest)
		if !strings.Contains(r.stderr, "already in") {
			t.Errorf("second download: stderr %q; want it to say the verified files are already there", r.stderr)
		}
	})

	t.Run("archive and restore by label", func(t *testing.T) {
		r := mustCLI(t, "model", "archive", "--name", "label-model", "--label", "latest")
		if !strings.Contains(r.stderr, "Archived model label-model version 2") {
			t.Fatalf("archive --label latest: %q; want version 2 archived", r.stderr)
		}
		if v := strings.TrimSpace(mustCLI(t, "model", "show", "--name", "label-model", "--label", "latest", "--query", "version", "-o", "tsv").stdout); v != "1" {
			t.Errorf("latest after archiving 2 is %q, want 1", v)
		}
		r = mustCLI(t, "model", "restore", "--name", "label-model", "--label", "latest")
		if !strings.Contains(r.stderr, "Restored model label-model version 2") {
			t.Fatalf("restore --label latest: %q; want version 2 restored (the newest, archived or not)", r.stderr)
		}
		if v := strings.TrimSpace(mustCLI(t, "model", "show", "--name", "label-model", "--label", "latest", "--query", "version", "-o", "tsv").stdout); v != "2" {
			t.Errorf("latest after restoring 2 is %q, want 2", v)
		}
		if r := cli(t, "model", "archive", "--name", "label-model", "--label", "newest"); r.code != 2 {
			t.Errorf("--label newest: exit %d, %s; want a usage error", r.code, r.stderr)
		}
	})
}
