package apiserver_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plumbline/plumbline/api"
)

// TestEnvironmentRegistry: register (201), the same again (200), other
// content under the same version (409), a local path (400), a Dockerfile
// missing from the build context (400); list, show by version and
// @latest, archive and restore; unknown names are 404; no container engine
// answers the image API with 409.
func TestEnvironmentRegistry(t *testing.T) {
	f := newFixture(t)
	ctx := writeFiles(t, filepath.Join(t.TempDir(), "docker-context"), map[string]string{"Dockerfile": "FROM debian:bookworm-slim\n"})
	a := f.upload(ctx)
	doc := func(name, version, body string) []byte {
		v := ""
		if version != "" {
			v = `,"version":"` + version + `"`
		}
		return []byte(`{"name":"` + name + `"` + v + `,` + body + `}`)
	}
	var e api.Environment
	json.Unmarshal(f.mustDo("POST", "/environments", doc("py-env", "", `"image":"python:3.12-slim"`), http.StatusCreated), &e)
	if e.Version != "1" || e.Image != "python:3.12-slim" || !strings.HasPrefix(e.Digest, "sha256:") {
		t.Errorf("created %+v, want version 1 of the image with a digest", e)
	}
	f.mustDo("POST", "/environments", doc("py-env", "1", `"image":"python:3.12-slim"`), http.StatusOK)
	f.mustDo("POST", "/environments", doc("py-env", "1", `"image":"python:3.13-slim"`), http.StatusConflict)
	json.Unmarshal(f.mustDo("POST", "/environments", doc("py-env", "", `"build":{"path":"`+a.Digest+`"}`), http.StatusCreated), &e)
	if e.Version != "2" || !strings.Contains(string(e.Build), a.Digest) {
		t.Errorf("second version %+v, want version 2 with the build context", e)
	}
	f.mustDo("POST", "/environments", doc("py-env", "", `"build":{"path":"/home/me/ctx"}`), http.StatusBadRequest)
	f.mustDo("POST", "/environments", doc("py-env", "", `"build":{"path":"`+a.Digest+`","dockerfile_path":"other.Dockerfile"}`), http.StatusBadRequest)

	var list []api.Environment
	json.Unmarshal(f.mustDo("GET", "/environments", nil, http.StatusOK), &list)
	if len(list) != 2 || list[0].Version != "2" {
		t.Errorf("list = %+v, want versions 2 then 1", list)
	}
	json.Unmarshal(f.mustDo("GET", "/environments/py-env/versions/@latest", nil, http.StatusOK), &e)
	if e.Version != "2" {
		t.Errorf("@latest = %s, want 2", e.Version)
	}
	f.mustDo("POST", "/environments/py-env/versions/2/archive", nil, http.StatusNoContent)
	json.Unmarshal(f.mustDo("GET", "/environments/py-env/versions/@latest", nil, http.StatusOK), &e)
	if e.Version != "1" {
		t.Errorf("@latest with 2 archived = %s, want 1", e.Version)
	}
	f.mustDo("POST", "/environments/py-env/versions/2/restore", nil, http.StatusNoContent)
	f.mustDo("GET", "/environments/nope/versions/1", nil, http.StatusNotFound)
	f.mustDo("POST", "/environments/nope/archive", nil, http.StatusNotFound)

	f.mustDo("GET", "/images?ref=python:3.12-slim", nil, http.StatusConflict)
}
