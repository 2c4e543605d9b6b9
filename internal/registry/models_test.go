package registry

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/store"
)

func ingest(t *testing.T, f *fixture, entries ...entry) Artifact {
	t.Helper()
	art, err := f.reg.Ingest(bg, bytes.NewReader(makeTar(t, false, entries...)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return art
}

func TestCreateModel(t *testing.T) {
	f := newFixture(t, Limits{})
	a := ingest(t, f, dir("models"), file("models/crate.bin", "crate v1"), file("models/x.txt", "x"))
	b := ingest(t, f, file("crate.bin", "crate v2"))

	m, created, err := f.reg.CreateModel(bg, store.ModelVersion{Name: "iris", Version: "1", Digest: a.Digest, Description: "first"})
	if err != nil || !created {
		t.Fatalf("create: got created=%v, %v; want true, nil", created, err)
	}
	want := store.ModelVersion{Name: "iris", Version: "1", Digest: a.Digest, Type: TypeCustomModel, Description: "first",
		PathBase: "models", Size: 9, FileCount: 2, CreatedAt: m.CreatedAt}
	if diff := cmp.Diff(want, m, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("create (-want +got):\n%s", diff)
	}

	t.Run("same content is a no-op", func(t *testing.T) {
		again, created, err := f.reg.CreateModel(bg, store.ModelVersion{Name: "iris", Version: "1", Digest: a.Digest, Description: "other"})
		if err != nil || created {
			t.Fatalf("got created=%v, %v; want false, nil", created, err)
		}
		if again.Description != "first" || !again.CreatedAt.Equal(m.CreatedAt) {
			t.Errorf("got %+v, want the stored version", again)
		}
	})

	t.Run("other content conflicts", func(t *testing.T) {
		_, created, err := f.reg.CreateModel(bg, store.ModelVersion{Name: "iris", Version: "1", Digest: b.Digest})
		if !errors.Is(err, store.ErrConflict) || created {
			t.Fatalf("got created=%v, %v; want false, ErrConflict", created, err)
		}
		msg := err.Error()
		for _, want := range []string{"model iris version 1 already exists with different content",
			short(a.Digest), short(b.Digest), "register it as a new version or omit --version"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q: want it to contain %q", msg, want)
			}
		}
	})

	t.Run("auto versions", func(t *testing.T) {
		for _, want := range []string{"2", "3"} {
			m, created, err := f.reg.CreateModel(bg, store.ModelVersion{Name: "iris", Digest: b.Digest, Type: TypeMLflowModel})
			if err != nil || !created || m.Version != want {
				t.Errorf("got version %q created=%v (%v), want %q true", m.Version, created, err, want)
			}
			if m.PathBase != "crate.bin" || m.Type != TypeMLflowModel {
				t.Errorf("got path base %q type %q, want crate.bin mlflow_model", m.PathBase, m.Type)
			}
		}
	})

	tests := []struct {
		name string
		m    store.ModelVersion
		want error
	}{
		{"unknown artifact", store.ModelVersion{Name: "iris", Version: "9", Digest: blob.Digest([]byte("no"))}, ErrArtifactNotFound},
		{"file blob is not an artifact", store.ModelVersion{Name: "iris", Version: "9", Digest: blob.Digest([]byte("crate v2"))}, ErrArtifactNotFound},
		{"malformed digest", store.ModelVersion{Name: "iris", Version: "9", Digest: "sha256:xyz"}, blob.ErrInvalidDigest},
		{"empty name", store.ModelVersion{Version: "9", Digest: a.Digest}, ErrInvalid},
		{"name with colon", store.ModelVersion{Name: "a:b", Digest: a.Digest}, ErrInvalid},
		{"version with at", store.ModelVersion{Name: "iris", Version: "1@x", Digest: a.Digest}, ErrInvalid},
		{"version latest", store.ModelVersion{Name: "iris", Version: "latest", Digest: a.Digest}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := f.reg.CreateModel(bg, tt.m); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestResolveModel(t *testing.T) {
	f := newFixture(t, Limits{})
	a := ingest(t, f, dir("models"), file("models/crate.bin", "crate"))
	for range 3 {
		if _, _, err := f.reg.CreateModel(bg, store.ModelVersion{Name: "iris", Digest: a.Digest}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.SetModelArchived(bg, "iris", "3", true); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, model, ref, want string
		err                    error
	}{
		{"latest skips archived", "iris", "latest", "2", nil},
		{"archived by version", "iris", "3", "3", nil},
		{"version", "iris", "1", "1", nil},
		{"unknown version", "iris", "7", "", store.ErrNotFound},
		{"unknown model", "rose", "latest", "", store.ErrNotFound},
		{"empty reference", "iris", "", "", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := f.reg.ResolveModel(bg, tt.model, tt.ref)
			if !errors.Is(err, tt.err) || m.Version != tt.want {
				t.Errorf("got %q, %v; want %q, %v", m.Version, err, tt.want, tt.err)
			}
		})
	}

	m, dir, err := f.reg.ModelArtifactTree(bg, "iris", "latest")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, m.PathBase, "crate.bin"))
	if err != nil || string(b) != "crate" {
		t.Errorf("model file: got %q (%v), want crate", b, err)
	}
	if err := f.st.SetModelArchived(bg, "iris", "", true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.reg.ModelArtifactTree(bg, "iris", "latest"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("all archived: got %v, want ErrNotFound", err)
	}
}

// TestModelNamesCaseInsensitive is defect 8: rm-e, RM-E and Rm-E were four
// models; like endpoint and deployment names, they are one, kept in lower
// case.
func TestModelNamesCaseInsensitive(t *testing.T) {
	f := newFixture(t, Limits{})
	a := ingest(t, f, file("crate.bin", "v1"))
	b := ingest(t, f, file("crate.bin", "v2"))
	for i, name := range []string{"rm-e", "RM-E", "Rm-E"} {
		d := a.Digest
		if i > 0 {
			d = b.Digest
		}
		m, _, err := f.reg.CreateModel(bg, store.ModelVersion{Name: name, Digest: d})
		if err != nil {
			t.Fatal(err)
		}
		if m.Name != "rm-e" {
			t.Errorf("create %s: stored as %q, want rm-e", name, m.Name)
		}
	}
	all, err := f.st.ListModels(bg, store.ModelFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("got %d model versions, want 3 versions of one model", len(all))
	}
	for _, m := range all {
		if m.Name != "rm-e" {
			t.Errorf("version %s stored under %q", m.Version, m.Name)
		}
	}
	for _, ref := range [][2]string{{"RM-E", "1"}, {"rm-E", LabelLatest}, {"rm-e", "2"}} {
		m, err := f.reg.ResolveModel(bg, ref[0], ref[1])
		if err != nil {
			t.Errorf("resolve %s:%s: %v", ref[0], ref[1], err)
			continue
		}
		if ref[1] == LabelLatest && m.Version != "3" {
			t.Errorf("%s@latest: got version %s, want 3", ref[0], m.Version)
		}
	}
	// The same name and version with other content still conflicts, whatever the case.
	if _, _, err := f.reg.CreateModel(bg, store.ModelVersion{Name: "RM-E", Version: "1", Digest: b.Digest}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("RM-E:1 with other bytes: got %v, want ErrConflict", err)
	}
}
