package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/store"
)

// jsonDigests returns every string value of a JSON document that is
// exactly a digest: in plumbline's documents and resolved plans, that is
// an uploaded artifact (an image pinned by digest is "name@sha256:…", not a
// digest on its own).
func jsonDigests(raw []byte) []string {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			if blob.ValidDigest(x) {
				out = append(out, x)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// FileRef is one file of an artifact: where a file blob is used.
type FileRef struct {
	Artifact string `json:"artifact"`
	Path     string `json:"path"`
}

// references is what the store points at, for fsck and the garbage
// collector.
type references struct {
	// users by digest (an artifact, or any blob a record names directly):
	// "model iris:1", "deployment r-endpoint-iris/blue", "endpoint e".
	users map[string][]string
	// files maps every file blob of a referenced artifact to the artifacts
	// (and paths) holding it.
	files map[string][]FileRef
	// manifests of the referenced artifacts that could be read.
	manifests map[string]Manifest
	// unreadable holds the referenced digests whose manifest could not be
	// read (missing, corrupt), with the error; a digest that is simply a
	// blob and not an artifact is not in it.
	unreadable map[string]error
}

// referenced reports whether a blob is kept by the store: named by a record,
// or a file of a referenced artifact.
func (rs *references) referenced(digest string) bool {
	return len(rs.users[digest]) > 0 || len(rs.files[digest]) > 0
}

// usersOf lists who uses a blob, through the artifacts that hold it too.
func (rs *references) usersOf(digest string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(us []string) {
		for _, u := range us {
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	add(rs.users[digest])
	for _, f := range rs.files[digest] {
		add(rs.users[f.Artifact])
	}
	sort.Strings(out)
	return out
}

// collectReferences reads every model version and environment version
// (archived ones too), endpoint and deployment, and collects each artifact
// they name. Documents are scanned as JSON for every value that is a
// digest, so every artifact a resolved plan pins (model, code, build
// context, the previous plan kept for a failed update, and fields added
// later) keeps its blobs.
func (r *Registry) collectReferences(ctx context.Context) (*references, error) {
	rs := &references{users: map[string][]string{}, files: map[string][]FileRef{},
		manifests: map[string]Manifest{}, unreadable: map[string]error{}}
	models, err := r.st.ListModels(ctx, store.ModelFilter{IncludeArchived: true})
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	for _, m := range models {
		rs.add(m.Digest, "model "+m.Name+":"+m.Version)
	}
	eps, err := r.st.ListEndpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	for _, e := range eps {
		for _, d := range jsonDigests(e.Spec) {
			rs.add(d, "endpoint "+e.Name)
		}
	}
	deps, err := r.st.ListDeployments(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	for _, dep := range deps {
		for _, d := range jsonDigests(dep.Spec) {
			rs.add(d, "deployment "+dep.Endpoint+"/"+dep.Name)
		}
	}
	envs, err := r.st.ListEnvironments(ctx, store.EnvironmentFilter{IncludeArchived: true})
	if err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	for _, e := range envs {
		for _, d := range jsonDigests(e.Spec) {
			rs.add(d, "environment "+e.Name+":"+e.Version)
		}
	}
	for d := range rs.users {
		if !r.blobs.Has(d) {
			rs.unreadable[d] = fmt.Errorf("artifact %s: %w", d, ErrArtifactNotFound)
			continue
		}
		m, err := r.Manifest(ctx, d)
		if err != nil {
			if isNotManifest(err) {
				continue // a plain blob named directly: kept, nothing inside
			}
			rs.unreadable[d] = err
			continue
		}
		rs.manifests[d] = m
		for _, e := range m.Entries {
			if e.Type == TypeFile {
				rs.files[e.Digest] = append(rs.files[e.Digest], FileRef{Artifact: d, Path: e.Path})
			}
		}
	}
	return rs, nil
}

func (rs *references) add(digest, user string) {
	if !slices.Contains(rs.users[digest], user) {
		rs.users[digest] = append(rs.users[digest], user)
	}
}
