package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// seedFile is a file of the seed's example folder, used read-only.
func seedFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(repoRoot, "examples", "r-iris", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("examples/r-iris/%s is missing: %v", name, err)
	}
	return p
}

// TestServeDataDirIsPrivateAndSurvivesKill9 starts `serve` with nothing but
// a data dir and a listen address, checks that what it writes is private,
// registers models, endpoints and keys, kills the server with SIGKILL and
// checks that a new server on the same data dir has all of it, with the
// same keys and a token signing key that still accepts old tokens.
func TestServeDataDirIsPrivateAndSurvivesKill9(t *testing.T) {
	t.Parallel()
	dd := newDataDir(t)
	s := startServer(t, dd)

	// Everything the server wrote is private to the user. A server running
	// as root lets the instances' group (and no one else) enter the data
	// dir and its cache, where their code and models are (docs/security.md).
	shared := map[string]bool{}
	wantRoot := fs.FileMode(0o700)
	if os.Geteuid() == 0 {
		wantRoot, shared["cache"] = 0o710, true
	}
	if fi, err := os.Stat(dd); err != nil || fi.Mode().Perm() != wantRoot {
		t.Errorf("data dir mode: got %v (%v), want %04o", fi.Mode().Perm(), err, wantRoot)
	}
	for _, f := range []string{"admin.token", "plumbline.db", "server.json", "secrets.key", "tls/ca.key", "tls/server.key"} {
		fi, err := os.Stat(filepath.Join(dd, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: got mode %04o, want 0600", f, got)
		}
	}
	ents, _ := os.ReadDir(dd)
	for _, e := range ents {
		fi, _ := e.Info()
		want := fs.FileMode(0o700)
		if shared[e.Name()] {
			want = 0o710
		}
		if e.IsDir() && fi.Mode().Perm() != want {
			t.Errorf("%s/: got mode %04o, want %04o", e.Name(), fi.Mode().Perm(), want)
		}
		if !e.IsDir() && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: got mode %04o, want no access for group and others", e.Name(), fi.Mode().Perm())
		}
	}
	filepath.WalkDir(dd, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Mode().Perm()&0o022 != 0 {
			t.Errorf("%s: mode %04o is writable by group or others", p, fi.Mode().Perm())
		}
		return nil
	})

	// State to survive: two model versions, a key endpoint, a token endpoint.
	model := t.TempDir()
	writeFile(t, filepath.Join(model, "weights.bin"), "0123456789")
	s.must(t, "model", "create", "--name", "iris", "--version", "1", "--path", model)
	writeFile(t, filepath.Join(model, "weights.bin"), "9876543210")
	s.must(t, "model", "create", "--name", "iris", "--version", "2", "--path", model)
	s.must(t, "online-endpoint", "create", "--name", "keyed", "--auth-mode", "key")
	s.must(t, "online-endpoint", "create", "-f", seedFile(t, "endpoint.yml"))
	keysBefore := s.keys(t, "keyed")
	var token struct {
		AccessToken string `json:"accessToken"`
	}
	s.mustJSON(t, &token, "online-endpoint", "get-credentials", "--name", "r-endpoint-iris")
	modelsBefore := s.must(t, "model", "list", "-o", "json").stdout
	endpointsBefore := endpointsWithoutURIs(t, s)

	s.kill9(t)
	s2 := startServer(t, dd)

	if got := s2.must(t, "model", "list", "-o", "json").stdout; got != modelsBefore {
		t.Errorf("model list changed across kill -9 and restart (-before +after):\n%s", cmp.Diff(modelsBefore, got))
	}
	if diff := cmp.Diff(endpointsBefore, endpointsWithoutURIs(t, s2)); diff != "" {
		t.Errorf("online-endpoint list changed across kill -9 and restart (-before +after):\n%s", diff)
	}
	if got := s2.keys(t, "keyed"); got != keysBefore {
		t.Errorf("get-credentials after restart: got %+v, want the keys from before %+v", got, keysBefore)
	}

	// The restarted gateway accepts the old key and the old token (there
	// is no deployment yet, so an accepted request is a 404, not a 401).
	c := s2.httpClient(t)
	for _, tc := range []struct{ endpoint, secret string }{
		{"keyed", keysBefore.PrimaryKey},
		{"keyed", keysBefore.SecondaryKey},
		{"r-endpoint-iris", token.AccessToken},
	} {
		uri := s2.endpoint(t, tc.endpoint).ScoringURI
		if r := score(t, c, uri, tc.secret, "", "{}"); r.status == http.StatusUnauthorized {
			t.Errorf("%s: a credential issued before the restart is refused after it: %d %s", tc.endpoint, r.status, r.body)
		}
		if r := score(t, c, uri, "not-a-key", "", "{}"); r.status != http.StatusUnauthorized {
			t.Errorf("%s with a wrong secret: got %d, want 401", tc.endpoint, r.status)
		}
	}
}

// endpointsWithoutURIs is `online-endpoint list -o json` without the
// fields that carry the server's (per-run) port.
func endpointsWithoutURIs(t *testing.T, s *server) []map[string]any {
	t.Helper()
	var list []map[string]any
	s.mustJSON(t, &list, "online-endpoint", "list")
	if len(list) == 0 {
		t.Fatal("online-endpoint list: no endpoints")
	}
	for _, e := range list {
		delete(e, "scoring_uri")
		delete(e, "openapi_uri")
	}
	return list
}

type modelView struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Type     string `json:"type"`
	Path     string `json:"path"`
	Digest   string `json:"digest"`
	Size     int64  `json:"size"`
	Files    int    `json:"files"`
	Archived bool   `json:"archived"`
}

// TestModelLifecycle registers, shows, versions, archives and downloads a
// model and checks that registering is idempotent for identical content and
// refused for different content under the same version.
func TestModelLifecycle(t *testing.T) {
	t.Parallel()
	s := startServer(t, newDataDir(t))

	src := filepath.Join(t.TempDir(), "iris-model")
	weights := make([]byte, 4096)
	rand.Read(weights)
	writeFile(t, filepath.Join(src, "model.rds"), string(weights))
	meta := `["sepal_length","sepal_width"]` + "\n"
	writeFile(t, filepath.Join(src, "meta", "columns.json"), meta)

	r := s.must(t, "model", "create", "--name", "iris", "--version", "1", "--path", src)
	if !strings.Contains(r.stderr, "Registered model iris version 1") {
		t.Errorf("model create: stderr does not say it registered iris 1:\n%s", r)
	}
	var m modelView
	s.mustJSON(t, &m, "model", "show", "--name", "iris", "--version", "1")
	want := modelView{Name: "iris", Version: "1", Type: "custom_model", Path: "iris-model", Size: int64(len(weights) + len(meta)), Files: 2}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(m.Digest) {
		t.Errorf("model show: digest %q is not sha256:<64 hex>", m.Digest)
	}
	want.Digest = m.Digest
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("model show --name iris --version 1 (-want +got):\n%s", diff)
	}

	latest := func() string {
		var m modelView
		s.mustJSON(t, &m, "model", "show", "--name", "iris", "--label", "latest")
		return m.Version
	}
	if v := latest(); v != "1" {
		t.Errorf("@latest with one version: got %s, want 1", v)
	}

	// Version 2, then archived: @latest goes back to 1.
	other := filepath.Join(t.TempDir(), "iris-model")
	writeFile(t, filepath.Join(other, "model.rds"), "version two")
	s.must(t, "model", "create", "--name", "iris", "--version", "2", "--path", other)
	if v := latest(); v != "2" {
		t.Errorf("@latest after creating version 2: got %s, want 2", v)
	}
	s.must(t, "model", "archive", "--name", "iris", "--version", "2")
	if v := latest(); v != "1" {
		t.Errorf("@latest after archiving version 2: got %s, want 1", v)
	}

	// Download gives back the same bytes, file by file.
	dl := t.TempDir()
	s.must(t, "model", "download", "--name", "iris", "--version", "1", "--download-path", dl)
	if diff := cmp.Diff(treeHashes(t, src), treeHashes(t, filepath.Join(dl, "iris", "iris-model"))); diff != "" {
		t.Errorf("model download: files differ from the registered ones (-registered +downloaded):\n%s", diff)
	}

	// Registering iris:1 again with the same files is a no-op.
	r = s.must(t, "model", "create", "--name", "iris", "--version", "1", "--path", src, "-o", "json")
	var again modelView
	decodeJSON(t, r, &again)
	if again.Digest != m.Digest || !strings.Contains(r.stderr, "already registered with identical content") {
		t.Errorf("re-registering identical iris:1: want the same digest and a no-op message:\n%s", r)
	}
	// With different files it is a conflict.
	r = s.cli(t, "model", "create", "--name", "iris", "--version", "1", "--path", other)
	lines := r.stderrLines()
	if r.code != 1 || len(lines) == 0 {
		t.Fatalf("iris:1 with different files: want exit 1 and an error:\n%s", r)
	}
	last := lines[len(lines)-1]
	for _, want := range []string{"ERROR: model iris version 1 already exists with different content", "register it as a new version or omit --version"} {
		if !strings.Contains(last, want) {
			t.Errorf("iris:1 with different files: error line %q does not contain %q", last, want)
		}
	}
	var list []modelView
	s.mustJSON(t, &list, "model", "list", "--name", "iris", "--include-archived")
	if len(list) != 2 {
		t.Errorf("model list after the refused create: got %d versions, want 2: %+v", len(list), list)
	}
}

// treeHashes maps each file under root (relative path) to its sha256.
func treeHashes(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		sum := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatalf("hash %s: %v", root, err)
	}
	return out
}

// TestEndpointCredentials checks get-credentials for the seed's aml_token
// endpoint and for a key endpoint, and that regenerating the secondary key
// leaves the primary alone.
func TestEndpointCredentials(t *testing.T) {
	t.Parallel()
	s := startServer(t, newDataDir(t))

	s.must(t, "online-endpoint", "create", "-f", seedFile(t, "endpoint.yml"))
	var tok struct {
		AccessToken         string `json:"accessToken"`
		ExpiryTimeUtc       string `json:"expiryTimeUtc"`
		RefreshAfterTimeUtc string `json:"refreshAfterTimeUtc"`
	}
	s.mustJSON(t, &tok, "online-endpoint", "get-credentials", "--name", "r-endpoint-iris")
	if parts := strings.Split(tok.AccessToken, "."); len(parts) != 3 {
		t.Errorf("accessToken %q is not a JWT", tok.AccessToken)
	}
	expiry, err1 := time.Parse(time.RFC3339, tok.ExpiryTimeUtc)
	refresh, err2 := time.Parse(time.RFC3339, tok.RefreshAfterTimeUtc)
	if err1 != nil || err2 != nil {
		t.Fatalf("expiryTimeUtc %q / refreshAfterTimeUtc %q: want RFC 3339 times (%v, %v)", tok.ExpiryTimeUtc, tok.RefreshAfterTimeUtc, err1, err2)
	}
	if now := time.Now(); !(now.Before(refresh) && refresh.Before(expiry)) {
		t.Errorf("want now < refreshAfterTimeUtc < expiryTimeUtc, got now %s, refresh %s, expiry %s", now.UTC(), refresh, expiry)
	}

	s.must(t, "online-endpoint", "create", "--name", "keyed-endpoint", "--auth-mode", "key")
	before := s.keys(t, "keyed-endpoint")
	if before.PrimaryKey == before.SecondaryKey {
		t.Errorf("primary and secondary keys are the same: %q", before.PrimaryKey)
	}
	s.must(t, "online-endpoint", "regenerate-keys", "--name", "keyed-endpoint", "--key-type", "secondary")
	after := s.keys(t, "keyed-endpoint")
	if after.PrimaryKey != before.PrimaryKey {
		t.Errorf("regenerate-keys --key-type secondary changed the primary key")
	}
	if after.SecondaryKey == before.SecondaryKey {
		t.Errorf("regenerate-keys --key-type secondary did not change the secondary key")
	}
}

// TestInvalidDocumentsAreRefused feeds documents with one mistake each to
// create: each is refused with exit 1 and one stderr line that names the
// file, the line and what to change, and nothing is stored.
func TestInvalidDocumentsAreRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, newDataDir(t))
	dir := filepath.Join("testdata", "invalid")
	s.must(t, "online-endpoint", "create", "--name", "valid-ep", "--auth-mode", "key")

	for _, tc := range []struct {
		name, file, kind, want string
	}{
		{"name too short", "name-too-short.yml", "online-endpoint",
			"ERROR: name-too-short.yml:2:7: name: The name for an endpoint must be at least 3 and at most 32 characters long (inclusive of both limits)."},
		{"traffic sums to 90", "traffic-90.yml", "online-endpoint",
			"ERROR: traffic-90.yml:4:1: traffic: must total 0 or 100; it totals 90: blue=90"},
		{"mirror of 60 percent", "mirror-60.yml", "online-endpoint",
			"ERROR: mirror-60.yml:5:10: mirror_traffic.green: Only one key will be accepted and value needs to be less than or equal to 50%; got 60"},
		{"unknown key", "unknown-key.yml", "online-endpoint",
			"ERROR: unknown-key.yml:4:1: auth_mod: unknown field; did you mean auth_mode?"},
		{"trailing dash in a name", "trailing-dash.yml", "online-endpoint",
			"ERROR: trailing-dash.yml:2:7: name: The name for an endpoint must start with an upper- or lowercase letter and only consist of '-'s and alphanumeric characters."},
		{"broken YAML", "broken-yaml.yml", "online-endpoint",
			"ERROR: broken-yaml.yml:3: invalid YAML: did not find expected ',' or ']'"},
		{"negative instance_count", "negative-instance-count.yml", "online-deployment",
			"ERROR: negative-instance-count.yml:11:17: instance_count: must be at least 1; got -1"},
		{"string request_timeout_ms", "timeout-string.yml", "online-deployment",
			`ERROR: timeout-string.yml:13:23: request_settings.request_timeout_ms: expected an integer (milliseconds), got string "5s"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.cliIn(t, dir, tc.kind, "create", "-f", tc.file)
			if r.code != 1 {
				t.Errorf("exit code: got %d, want 1\n%s", r.code, r)
			}
			if lines := r.stderrLines(); len(lines) != 1 || lines[0] != tc.want {
				t.Errorf("stderr: got %q, want exactly one line %q", lines, tc.want)
			}
			// The server-less check refuses it too, with the same line.
			v := runCLI(t, s.dataDir, dir, "validate", "-f", tc.file)
			if v.code != 1 || !strings.Contains(v.stderr, strings.TrimPrefix(tc.want, "ERROR: ")) {
				t.Errorf("validate: want exit 1 and the same problem:\n%s", v)
			}
		})
	}

	var eps []endpointView
	s.mustJSON(t, &eps, "online-endpoint", "list")
	if len(eps) != 1 || eps[0].Name != "valid-ep" {
		t.Errorf("online-endpoint list after refused creates: got %+v, want only valid-ep", eps)
	}
	var deps []deploymentView
	s.mustJSON(t, &deps, "online-deployment", "list", "--endpoint-name", "valid-ep")
	if len(deps) != 0 {
		t.Errorf("online-deployment list after refused creates: got %+v, want none", deps)
	}
}

// sharedDir is the shared test data folder: $PLUMBLINE_SHARED or ../shared
// next to the repository.
func sharedDir(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("PLUMBLINE_SHARED"), filepath.Join(repoRoot, "..", "shared")}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(c, "testdata", "azureml-examples")); err == nil {
			return c
		}
	}
	skip(t, fmt.Sprintf("the shared test data (testdata/azureml-examples) is not in $PLUMBLINE_SHARED or %s", filepath.Join(repoRoot, "..", "shared")))
	return ""
}

var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// fillPlaceholder is the value the samples' scripts would substitute for a
// {{NAME}} token: a version for *VERSION*, otherwise a valid name.
func fillPlaceholder(name string) string {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "version"):
		return "1"
	case strings.Contains(n, "endpoint"):
		return "my-endpoint"
	case strings.Contains(n, "deployment"):
		return "blue"
	case strings.Contains(n, "acr"):
		return "myacr"
	case strings.Contains(n, "model"):
		return "sklearn-model"
	case strings.Contains(n, "environment"):
		return "sklearn-env"
	}
	return strings.ReplaceAll(n, "_", "-")
}

// TestValidateAzureExamples runs `plumbline validate -f` on every YAML file
// of Azure's public online-endpoint examples, placeholders filled as their
// README says: all are accepted.
func TestValidateAzureExamples(t *testing.T) {
	t.Parallel()
	requireBinary(t)
	src := filepath.Join(sharedDir(t), "testdata", "azureml-examples")
	dst := t.TempDir()
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if ext := filepath.Ext(p); ext == ".yml" || ext == ".yaml" {
			b = placeholder.ReplaceAllFunc(b, func(m []byte) []byte {
				return []byte(fillPlaceholder(string(placeholder.FindSubmatch(m)[1])))
			})
			files = append(files, rel)
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found %d YAML files under %s, want the whole examples folder", len(files), src)
	}
	sort.Strings(files)
	for _, f := range files {
		r := runCLI(t, t.TempDir(), dst, "validate", "-f", f)
		if r.code != 0 || !strings.Contains(r.stdout, f+": valid ") {
			t.Errorf("validate %s: want exit 0 and %q:\n%s", f, f+": valid …", r)
		}
	}
	t.Logf("validated %d files from %s", len(files), src)
}

// TestCLIUsageAndOutputFormats checks exit code 2 for usage mistakes, the
// three output formats, and create vs apply on an existing endpoint.
func TestCLIUsageAndOutputFormats(t *testing.T) {
	t.Parallel()
	s := startServer(t, newDataDir(t))
	endpointFile := seedFile(t, "endpoint.yml")

	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"online-endpoint", "list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"online-endpoint", "show"}, "missing --name"},
		{[]string{"online-deployment", "show", "--name", "blue"}, "missing --endpoint-name"},
		{[]string{"model", "show", "--name", "iris"}, "--label latest"},
		{[]string{"online-endpoint", "list", "-o", "xml"}, `--output "xml"`},
		{[]string{"online-endpoint", "regenerate-keys", "--name", "x", "--key-type", "tertiary"}, "want primary or secondary"},
	} {
		r := s.cli(t, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("want exit 2 and %q in stderr:\n%s", tc.want, r)
		}
	}

	s.must(t, "online-endpoint", "create", "-f", endpointFile)

	// -o json, yaml, table show the same endpoint.
	var j endpointView
	s.mustJSON(t, &j, "online-endpoint", "show", "--name", "r-endpoint-iris")
	if j.Name != "r-endpoint-iris" || j.AuthMode != "aml_token" || j.ProvisioningState != "Succeeded" {
		t.Errorf("-o json: got %+v", j)
	}
	var y map[string]any
	r := s.must(t, "online-endpoint", "show", "--name", "r-endpoint-iris", "-o", "yaml")
	if err := yaml.Unmarshal([]byte(r.stdout), &y); err != nil || y["name"] != "r-endpoint-iris" || y["auth_mode"] != "aml_token" || y["scoring_uri"] != j.ScoringURI {
		t.Errorf("-o yaml: want the endpoint as YAML (%v):\n%s", err, r)
	}
	r = s.must(t, "online-endpoint", "list", "-o", "table")
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "NAME") || !strings.Contains(rows[0], "AUTH") ||
		!strings.HasPrefix(rows[1], "r-endpoint-iris ") || !strings.Contains(rows[1], "aml_token") || !strings.Contains(rows[1], j.ScoringURI) {
		t.Errorf("-o table: want a header and one row for r-endpoint-iris:\n%s", r)
	}

	// create of an existing endpoint fails; apply of it succeeds, twice.
	r = s.cli(t, "online-endpoint", "create", "-f", endpointFile)
	if lines := r.stderrLines(); r.code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "r-endpoint-iris") || !strings.Contains(lines[0], "exists") {
		t.Errorf("create of an existing endpoint: want exit 1 and one line saying it exists:\n%s", r)
	}
	for i := 1; i <= 2; i++ {
		r := s.cli(t, "apply", "-f", endpointFile)
		if r.code != 0 || !strings.Contains(r.stderr, "endpoint r-endpoint-iris updated") {
			t.Errorf("apply #%d of an existing endpoint: want exit 0 and 'updated':\n%s", i, r)
		}
	}
	var after endpointView
	s.mustJSON(t, &after, "online-endpoint", "show", "--name", "r-endpoint-iris")
	if after.CreatedAt != j.CreatedAt || after.AuthMode != "aml_token" {
		t.Errorf("after apply: got %+v, want the same endpoint as before (%+v)", after, j)
	}
	var eps []json.RawMessage
	s.mustJSON(t, &eps, "online-endpoint", "list")
	if len(eps) != 1 {
		t.Errorf("online-endpoint list after create, failed create and two applies: got %d endpoints, want 1", len(eps))
	}
}
