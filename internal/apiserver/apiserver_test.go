package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/apiserver"
	"github.com/plumbline/plumbline/internal/auth"
	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/store"
	"github.com/plumbline/plumbline/internal/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const admin = "admin-token-for-tests"

// runtime is a Runtime that records notifications.
type runtime struct{ notified int }

func (r *runtime) Notify() { r.notified++ }
func (r *runtime) Instances(endpoint, deployment string) []api.Instance {
	return []api.Instance{{Name: deployment + "-0", State: "Ready", Ready: true}}
}
func (r *runtime) Logs(ctx context.Context, endpoint, deployment, instance string, lines int, follow bool, w io.Writer) error {
	_, err := io.WriteString(w, "Running plumber API at http://127.0.0.1:1234\n")
	return err
}

type tokens struct{ ti *auth.TokenIssuer }

func (t tokens) IssueEndpointToken(sub auth.Subject, now time.Time) (api.Token, error) {
	tok, err := t.ti.IssueFor(sub, now)
	return api.Token{AccessToken: tok.AccessToken, TokenType: "Bearer", ExpiryTimeUtc: tok.ExpiryTimeUtc, RefreshAfterTimeUtc: tok.RefreshAfterTimeUtc}, err
}

type fixture struct {
	t   *testing.T
	srv *httptest.Server
	st  store.Store
	rt  *runtime
}

func newFixture(t *testing.T) *fixture { return newFixtureBlobs(t, "") }

// newFixtureBlobs is newFixture with the blob store and cache in blobDir
// ("": a temporary folder).
func newFixtureBlobs(t *testing.T, blobDir string) *fixture {
	t.Helper()
	return newFixtureWrapped(t, blobDir, nil)
}

// newFixtureWrapped is newFixtureBlobs whose API server sees the store
// through wrap (nil: as it is); the fixture's st stays the store itself.
func newFixtureWrapped(t *testing.T, blobDir string, wrap func(store.Store) store.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if blobDir == "" {
		blobDir = dir
	}
	blobs, err := blob.New(filepath.Join(blobDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(st, blobs, filepath.Join(blobDir, "cache"), registry.Limits{})
	ti, err := auth.NewTokenIssuer(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	rt := &runtime{}
	var apiStore store.Store = st
	if wrap != nil {
		apiStore = wrap(st)
	}
	s := apiserver.New(apiserver.Config{
		Store: apiStore, Registry: reg, Runtime: rt, Tokens: tokens{ti}, AdminToken: admin,
		ScoringBaseURL: "https://localhost:8443",
		Info:           api.ServerInfo{Version: "test", ScoringBaseURL: "https://localhost:8443", Driver: "fake"},
		Now:            func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) },
	})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, st: st, rt: rt}
}

// do sends a request with the admin token and returns status and body.
func (f *fixture) do(method, path, contentType string, body []byte) (int, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+"/api/v1"+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (f *fixture) mustDo(method, path string, body []byte, want int) []byte {
	f.t.Helper()
	got, b := f.do(method, path, "application/json", body)
	if got != want {
		f.t.Fatalf("%s %s: got status %d, want %d; body %s", method, path, got, want, b)
	}
	return b
}

// upload tars dir and posts it as an artifact.
func (f *fixture) upload(dir string) api.Artifact {
	f.t.Helper()
	var buf bytes.Buffer
	if err := registry.WriteTar(context.Background(), &buf, dir, nil); err != nil {
		f.t.Fatal(err)
	}
	got, b := f.do("POST", "/artifacts", "application/x-tar", buf.Bytes())
	if got != http.StatusCreated {
		f.t.Fatalf("upload: got %d: %s", got, b)
	}
	var a api.Artifact
	if err := json.Unmarshal(b, &a); err != nil {
		f.t.Fatal(err)
	}
	return a
}

func writeFiles(t *testing.T, root string, files map[string]string) string {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

var (
	timeRE   = regexp.MustCompile(`"\d{4}-\d\d-\d\dT[0-9:.]+Z"`)
	digestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)
)

// golden compares body (normalized: times and digests replaced) with
// testdata/<name>.golden.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: not JSON: %s", name, body)
	}
	pretty, _ := json.MarshalIndent(v, "", "  ")
	norm := timeRE.ReplaceAll(pretty, []byte(`"<time>"`))
	norm = digestRE.ReplaceAllFunc(norm, func(d []byte) []byte { return append([]byte("sha256:"), d[7:19]...) })
	norm = append(norm, '\n')
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, norm, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), string(norm)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

func TestAdminTokenRequired(t *testing.T) {
	f := newFixture(t)
	for _, h := range []string{"", "Bearer wrong", "Basic " + admin, "Bearer"} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/api/v1/endpoints", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var er api.ErrorResponse
		json.NewDecoder(resp.Body).Decode(&er)
		resp.Body.Close()
		if resp.StatusCode != 401 || er.Error == nil || er.Error.Code != "Unauthorized" {
			t.Errorf("Authorization %q: got %d %+v, want 401 Unauthorized", h, resp.StatusCode, er.Error)
		}
	}
	// The OpenAPI document is public.
	resp, err := http.Get(f.srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("openapi.json: got %d, want 200", resp.StatusCode)
	}
}

func TestEndpointLifecycle(t *testing.T) {
	f := newFixture(t)
	doc := []byte("$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\nname: r-endpoint-iris\nauth_mode: aml_token\n")
	golden(t, "endpoint_create", f.mustDo("POST", "/endpoints", doc, 201))

	// Create of an existing endpoint fails as Azure's does.
	b := f.mustDo("POST", "/endpoints", doc, 409)
	if !strings.Contains(string(b), "already exists") {
		t.Errorf("got %s, want an 'already exists' message", b)
	}

	// aml_token: a token with Azure's fields; no keys.
	var tok api.Token
	json.Unmarshal(f.mustDo("POST", "/endpoints/r-endpoint-iris/token", nil, 200), &tok)
	if tok.AccessToken == "" || !tok.ExpiryTimeUtc.After(tok.RefreshAfterTimeUtc) {
		t.Errorf("got token %+v, want an access token expiring after its refresh time", tok)
	}
	f.mustDo("POST", "/endpoints/r-endpoint-iris/listkeys", nil, 400)

	// Key mode: two keys; regenerating the secondary changes only it.
	f.mustDo("POST", "/endpoints", []byte(`{"name":"key-ep","auth_mode":"key"}`), 201)
	var k1, k2 api.Keys
	json.Unmarshal(f.mustDo("POST", "/endpoints/key-ep/listkeys", nil, 200), &k1)
	json.Unmarshal(f.mustDo("POST", "/endpoints/key-ep/regenerateKeys", []byte(`{"keyType":"Secondary"}`), 200), &k2)
	if k1.PrimaryKey == "" || k1.SecondaryKey == "" || k1.PrimaryKey == k1.SecondaryKey {
		t.Fatalf("got keys %+v, want two different keys", k1)
	}
	if k2.PrimaryKey != k1.PrimaryKey || k2.SecondaryKey == k1.SecondaryKey {
		t.Errorf("regenerate secondary: got %+v from %+v, want only the secondary changed", k2, k1)
	}
	// aml_token: regenerate-keys revokes the tokens (there are no keys), as
	// revokeTokens does; each moves the token generation on, and the next
	// token is issued for it.
	var rk api.Keys
	json.Unmarshal(f.mustDo("POST", "/endpoints/r-endpoint-iris/regenerateKeys", nil, 200), &rk)
	if !rk.TokensRevoked || rk.PrimaryKey != "" {
		t.Errorf("regenerate-keys on aml_token: got %+v, want tokensRevoked and no keys", rk)
	}
	var rt api.TokensRevoked
	json.Unmarshal(f.mustDo("POST", "/endpoints/r-endpoint-iris/revokeTokens", nil, 200), &rt)
	if rt.TokenGeneration != 2 {
		t.Errorf("revokeTokens: got %+v, want generation 2", rt)
	}
	var tok2 api.Token
	json.Unmarshal(f.mustDo("POST", "/endpoints/r-endpoint-iris/token", nil, 200), &tok2)
	if tok2.AccessToken == tok.AccessToken {
		t.Error("the token after revocation is the one before")
	}
	f.mustDo("POST", "/endpoints/nope/revokeTokens", nil, 404)

	golden(t, "endpoint_list", f.mustDo("GET", "/endpoints", nil, 200))
	f.mustDo("DELETE", "/endpoints/key-ep", nil, 202)
	f.mustDo("DELETE", "/endpoints/key-ep", nil, 409)
	f.mustDo("GET", "/endpoints/nope", nil, 404)
}

func TestValidationErrorsAreStructured(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, doc, want string
	}{
		{"short name", "name: ab\n", "request body:1:7: name: The name for an endpoint must be at least 3 and at most 32 characters long (inclusive of both limits)."},
		{"unknown key", "name: abc\nauth_mod: key\n", "request body:2:1: auth_mod: unknown field; did you mean auth_mode?"},
		{"traffic at create", "name: abc\ntraffic:\n  blue: 100\n", "traffic cannot be set when an endpoint is created"},
		{"empty", "", "empty document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := f.mustDo("POST", "/endpoints", []byte(tt.doc), 400)
			var er api.ErrorResponse
			if err := json.Unmarshal(b, &er); err != nil || er.Error == nil {
				t.Fatalf("got %s, want an error body", b)
			}
			if !strings.Contains(er.Error.Message, tt.want) {
				t.Errorf("got message %q, want it to contain %q", er.Error.Message, tt.want)
			}
		})
	}
	b := f.mustDo("GET", "/endpoints", nil, 200)
	if strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("refused documents were stored: %s", b)
	}
}

func TestModelsAndDeployments(t *testing.T) {
	f := newFixture(t)
	root := t.TempDir()
	models := writeFiles(t, filepath.Join(root, "models"), map[string]string{"crate.bin": "model bytes"})
	a := f.upload(models)
	if a.Root != "models" || a.Files != 1 {
		t.Errorf("got artifact %+v, want root models and 1 file", a)
	}
	create := func(version string, digest string) (int, []byte) {
		b, _ := json.Marshal(api.ModelCreate{Name: "iris", Version: version, Artifact: digest})
		return f.do("POST", "/models", "application/json", b)
	}
	if got, b := create("1", a.Digest); got != 201 {
		t.Fatalf("model create: got %d %s", got, b)
	}
	if got, _ := create("1", a.Digest); got != 200 {
		t.Errorf("identical re-register: got %d, want 200 (no-op)", got)
	}
	other := f.upload(writeFiles(t, filepath.Join(t.TempDir(), "models"), map[string]string{"crate.bin": "other bytes"}))
	if got, b := create("1", other.Digest); got != 409 || !strings.Contains(string(b), "different content") {
		t.Errorf("conflicting re-register: got %d %s, want 409 naming different content", got, b)
	}
	golden(t, "model_latest", f.mustDo("GET", "/models/iris/versions/@latest", nil, 200))
	tarBody := f.mustDo("GET", "/artifacts/"+a.Digest, nil, 200)
	if len(tarBody) == 0 {
		t.Error("empty artifact download")
	}

	f.mustDo("POST", "/endpoints", []byte("name: r-endpoint-iris\nauth_mode: key\n"), 201)
	code := f.upload(writeFiles(t, filepath.Join(root, "src"), map[string]string{"plumber.R": "#* @get /live\nfunction() 'alive'\n"}))
	dep := strings.NewReplacer("CODE", code.Digest).Replace(`$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: r-endpoint-iris
code_configuration:
  code: CODE
  scoring_script: plumber.R
model: azureml:iris@latest
environment:
  image: myacr.azurecr.io/r:1
  inference_config:
    liveness_route: {port: 8000, path: /live}
    readiness_route: {port: 8000, path: /ready}
    scoring_route: {port: 8000, path: /score}
instance_type: Standard_DS2_v2
instance_count: 1
`)
	golden(t, "deployment_create", f.mustDo("POST", "/endpoints/r-endpoint-iris/deployments", []byte(dep), 201))
	if f.rt.notified == 0 {
		t.Error("the reconciler was not notified of the new deployment")
	}
	// The document as given has no defaults filled in (show has them), so
	// a client that edits one field and sends it back changes only that.
	given := string(f.mustDo("GET", "/endpoints/r-endpoint-iris/deployments/blue/document", nil, 200))
	if strings.Contains(given, "readiness_probe") || !strings.Contains(given, `"model":"azureml:iris:1"`) {
		t.Errorf("document as given: got %s, want no readiness_probe and the model pinned", given)
	}

	// A second create fails; an update while Creating is a conflict.
	f.mustDo("POST", "/endpoints/r-endpoint-iris/deployments", []byte(dep), 409)
	f.mustDo("PUT", "/endpoints/r-endpoint-iris/deployments/blue", []byte(dep), 409)

	// The model shows who uses it.
	var m api.Model
	json.Unmarshal(f.mustDo("GET", "/models/iris/versions/1", nil, 200), &m)
	if diff := cmp.Diff([]string{"r-endpoint-iris/blue"}, m.UsedBy); diff != "" {
		t.Errorf("used_by (-want +got):\n%s", diff)
	}

	// A scoring script missing from the code folder is refused, naming it.
	bad := strings.Replace(strings.Replace(dep, "plumber.R", "score.R", 1), "name: blue", "name: green", 1)
	b := f.mustDo("POST", "/endpoints/r-endpoint-iris/deployments", []byte(bad), 400)
	if !strings.Contains(string(b), "scoring script score.R is not in the code folder src (it holds: plumber.R)") {
		t.Errorf("got %s", b)
	}
	// An unregistered model is refused with the command that registers one.
	bad = strings.Replace(strings.Replace(dep, "iris@latest", "nope@latest", 1), "name: blue", "name: green", 1)
	b = f.mustDo("POST", "/endpoints/r-endpoint-iris/deployments", []byte(bad), 400)
	if !strings.Contains(string(b), "plumbline model create --name nope") {
		t.Errorf("got %s", b)
	}

	// Traffic must name existing deployments; a deployment with traffic
	// cannot be deleted.
	f.mustDo("PUT", "/endpoints/r-endpoint-iris", []byte("name: r-endpoint-iris\nauth_mode: key\ntraffic:\n  green: 100\n"), 400)
	if _, err := f.st.UpdateDeployment(context.Background(), "r-endpoint-iris", "blue", func(d *store.Deployment) error {
		d.State = store.StateSucceeded
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Re-applying the same document is a no-op: no new generation.
	before, _ := f.st.GetDeployment(context.Background(), "r-endpoint-iris", "blue")
	f.mustDo("PUT", "/endpoints/r-endpoint-iris/deployments/blue", []byte(dep), 200)
	after, _ := f.st.GetDeployment(context.Background(), "r-endpoint-iris", "blue")
	if after.Generation != before.Generation || after.State != store.StateSucceeded {
		t.Errorf("identical update: generation %d → %d, state %s; want unchanged and Succeeded", before.Generation, after.Generation, after.State)
	}
	// A changed document starts an update.
	f.mustDo("PUT", "/endpoints/r-endpoint-iris/deployments/blue", []byte(strings.Replace(dep, "instance_count: 1", "instance_count: 2", 1)), 200)
	after, _ = f.st.GetDeployment(context.Background(), "r-endpoint-iris", "blue")
	if after.Generation != before.Generation+1 || after.State != store.StateUpdating {
		t.Errorf("changed update: generation %d → %d, state %s; want +1 and Updating", before.Generation, after.Generation, after.State)
	}
	f.st.UpdateDeployment(context.Background(), "r-endpoint-iris", "blue", func(d *store.Deployment) error {
		d.State = store.StateSucceeded
		return nil
	})
	f.mustDo("PUT", "/endpoints/r-endpoint-iris", []byte("name: r-endpoint-iris\nauth_mode: key\ntraffic:\n  blue: 100\n"), 200)
	b = f.mustDo("DELETE", "/endpoints/r-endpoint-iris/deployments/blue", nil, 409)
	if !strings.Contains(string(b), "still has 100% of the live traffic") {
		t.Errorf("got %s", b)
	}
	logs := f.mustDo("GET", "/endpoints/r-endpoint-iris/deployments/blue/logs?lines=10", nil, 200)
	if !strings.Contains(string(logs), "Running plumber API") {
		t.Errorf("logs: got %q", logs)
	}
	golden(t, "deployment_events", f.mustDo("GET", "/endpoints/r-endpoint-iris/deployments/blue/events", nil, 200))
}

func TestOpenAPICoversRoutes(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]struct {
			Summary string `json:"summary"`
		} `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			n++
			if op.Summary == "" {
				t.Errorf("%s %s has no summary: add it to docs in openapi.go", method, path)
			}
		}
	}
	if n == 0 {
		t.Error("the served OpenAPI document has no operations")
	}
}

// TestNamesAreCaseInsensitive: My-Endpoint and my-endpoint are one
// endpoint, and a deployment named Blue takes traffic as blue.
func TestNamesAreCaseInsensitive(t *testing.T) {
	f := newFixture(t)
	f.mustDo("POST", "/endpoints", []byte("name: My-Endpoint\nauth_mode: key\n"), 201)
	f.mustDo("POST", "/endpoints", []byte("name: my-endpoint\nauth_mode: key\n"), 409)
	var ep api.Endpoint
	json.Unmarshal(f.mustDo("GET", "/endpoints/MY-ENDPOINT", nil, 200), &ep)
	if ep.Name != "my-endpoint" {
		t.Errorf("got name %q, want my-endpoint", ep.Name)
	}
	root := t.TempDir()
	code := f.upload(writeFiles(t, filepath.Join(root, "src"), map[string]string{"plumber.R": "x"}))
	dep := "name: Blue\nendpoint_name: My-Endpoint\ncode_configuration: {code: " + code.Digest + ", scoring_script: plumber.R}\nenvironment: {image: rstudio/plumber}\ninstance_type: Standard_DS2_v2\ninstance_count: 1\n"
	f.mustDo("POST", "/endpoints/My-Endpoint/deployments", []byte(dep), 201)
	f.st.UpdateDeployment(context.Background(), "my-endpoint", "blue", func(d *store.Deployment) error {
		d.State = store.StateSucceeded
		return nil
	})
	f.mustDo("PUT", "/endpoints/my-endpoint", []byte("name: my-endpoint\nauth_mode: key\ntraffic:\n  Blue: 100\n"), 200)
	b := f.mustDo("DELETE", "/endpoints/my-endpoint/deployments/BLUE", nil, 409)
	if !strings.Contains(string(b), "still has 100% of the live traffic") {
		t.Errorf("delete of a deployment with traffic under another case: got %s", b)
	}
}

func TestBadModelVersionIsABadRequest(t *testing.T) {
	f := newFixture(t)
	a := f.upload(writeFiles(t, filepath.Join(t.TempDir(), "models"), map[string]string{"m.bin": "x"}))
	for _, v := range []string{"a/b", "-1", "latest"} {
		b, _ := json.Marshal(api.ModelCreate{Name: "iris", Version: v, Artifact: a.Digest})
		if got, body := f.do("POST", "/models", "application/json", b); got != 400 {
			t.Errorf("version %q: got %d %s, want 400", v, got, body)
		}
	}
}

// TestAuthModeDefaultsToKey: an endpoint created without auth_mode uses
// keys, as Azure's default says: stored, shown, and its keys work.
func TestAuthModeDefaultsToKey(t *testing.T) {
	f := newFixture(t)
	var ep api.Endpoint
	json.Unmarshal(f.mustDo("POST", "/endpoints", []byte("name: plain-ep\n"), 201), &ep)
	if ep.AuthMode != "key" {
		t.Errorf("created without auth_mode: shows auth_mode %q, want key", ep.AuthMode)
	}
	rec, err := f.st.GetEndpoint(context.Background(), "plain-ep")
	if err != nil || rec.AuthMode != "key" {
		t.Errorf("stored auth mode %q (%v), want key", rec.AuthMode, err)
	}
	var k1, k2 api.Keys
	json.Unmarshal(f.mustDo("POST", "/endpoints/plain-ep/listkeys", nil, 200), &k1)
	json.Unmarshal(f.mustDo("POST", "/endpoints/plain-ep/regenerateKeys", []byte(`{"keyType":"Primary"}`), 200), &k2)
	if k1.PrimaryKey == "" || k2.PrimaryKey == k1.PrimaryKey || k2.SecondaryKey != k1.SecondaryKey {
		t.Errorf("keys %+v then %+v: want keys, and regenerating the primary to change only it", k1, k2)
	}
	f.mustDo("POST", "/endpoints/plain-ep/token", nil, 400)

	// A record written before the default was applied ("") still behaves as key.
	if _, err := f.st.UpdateEndpoint(context.Background(), "plain-ep", func(e *store.Endpoint) error { e.AuthMode = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	f.mustDo("POST", "/endpoints/plain-ep/listkeys", nil, 200)
	f.mustDo("POST", "/endpoints/plain-ep/regenerateKeys", []byte(`{"keyType":"Secondary"}`), 200)
}
