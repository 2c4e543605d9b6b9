package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

func testModelCreateGet(t *testing.T, s store.Store) {
	created := time.Date(2025, 3, 4, 5, 6, 7, 891011000, time.FixedZone("CET", 3600))
	in := store.ModelVersion{
		Name: "iris", Version: "1", Digest: digest("a"), Type: "custom_model",
		Description: "first", Tags: map[string]string{"team": "r", "stage": "dev"},
		PathBase: "models", Size: 1234, FileCount: 3, CreatedAt: created,
	}
	got := must(s.CreateModelVersion(bg, in))(t)
	diff(t, "CreateModelVersion", got, in)
	checkUTC(t, "CreatedAt", got.CreatedAt)
	if !got.CreatedAt.Equal(created) {
		t.Errorf("CreatedAt: got %v, want %v", got.CreatedAt, created)
	}

	got = must(s.GetModelVersion(bg, "iris", "1"))(t)
	diff(t, "GetModelVersion", got, in)
	checkUTC(t, "CreatedAt", got.CreatedAt)

	// A zero CreatedAt becomes now.
	before := time.Now().Add(-time.Second)
	got = must(s.CreateModelVersion(bg, store.ModelVersion{Name: "iris", Version: "2", Digest: digest("b")}))(t)
	if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt: got %v, want about now", got.CreatedAt)
	}
	checkUTC(t, "CreatedAt", got.CreatedAt)

	for _, tt := range []struct{ name, model, version string }{
		{"unknown version", "iris", "3"},
		{"unknown name", "rose", "1"},
		{"empty version", "iris", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.GetModelVersion(bg, tt.model, tt.version)
			wantErr(t, "GetModelVersion", err, store.ErrNotFound)
		})
	}
}

func testModelAutoVersion(t *testing.T, s store.Store) {
	steps := []struct {
		name, model, version, want string
	}{
		{"first is 1", "iris", "", "1"},
		{"then 2", "iris", "", "2"},
		{"explicit 7", "iris", "7", "7"},
		{"after 7 is 8", "iris", "", "8"},
		{"non-integer ignored", "iris", "beta", "beta"},
		{"still 9", "iris", "", "9"},
		{"semver ignored", "iris", "10.1", "10.1"},
		{"then 10", "iris", "", "10"},
		{"other name starts at 1", "rose", "", "1"},
	}
	for i, st := range steps {
		got := must(s.CreateModelVersion(bg, store.ModelVersion{
			Name: st.model, Version: st.version, Digest: digest(fmt.Sprint(i)),
		}))(t)
		if got.Version != st.want {
			t.Errorf("%s: got version %q, want %q", st.name, got.Version, st.want)
		}
	}
	// An auto version never collides, even with identical content.
	a := must(s.CreateModelVersion(bg, store.ModelVersion{Name: "same", Digest: digest("x")}))(t)
	b := must(s.CreateModelVersion(bg, store.ModelVersion{Name: "same", Digest: digest("x")}))(t)
	if a.Version != "1" || b.Version != "2" {
		t.Errorf("same content twice without version: got %q, %q, want 1, 2", a.Version, b.Version)
	}
}

func testModelSameVersion(t *testing.T, s store.Store) {
	first := must(s.CreateModelVersion(bg, store.ModelVersion{
		Name: "iris", Version: "1", Digest: digest("a"), Description: "original",
	}))(t)
	// Same digest: a no-op returning what is stored.
	again := must(s.CreateModelVersion(bg, store.ModelVersion{
		Name: "iris", Version: "1", Digest: digest("a"), Description: "changed",
	}))(t)
	diff(t, "same digest", again, first)

	_, err := s.CreateModelVersion(bg, store.ModelVersion{Name: "iris", Version: "1", Digest: digest("b")})
	wantErr(t, "different digest", err, store.ErrConflict)

	got := must(s.GetModelVersion(bg, "iris", "1"))(t)
	diff(t, "stored after conflict", got, first)
}

func testModelLatest(t *testing.T, s store.Store) {
	_, err := s.LatestModelVersion(bg, "iris")
	wantErr(t, "no versions", err, store.ErrNotFound)

	t0 := time.Now().UTC().Add(-time.Hour)
	for i, v := range []string{"1", "2", "3"} {
		must(s.CreateModelVersion(bg, store.ModelVersion{
			Name: "iris", Version: v, Digest: digest(v), CreatedAt: t0.Add(time.Duration(i) * time.Minute),
		}))(t)
	}
	latest := func(want string) {
		t.Helper()
		got, err := s.LatestModelVersion(bg, "iris")
		if err != nil || got.Version != want {
			t.Errorf("LatestModelVersion: got %q (%v), want %q", got.Version, err, want)
		}
	}
	latest("3")
	if err := s.SetModelArchived(bg, "iris", "3", true); err != nil {
		t.Fatal(err)
	}
	latest("2")
	// "Latest" is the most recently created, not the greatest version.
	must(s.CreateModelVersion(bg, store.ModelVersion{Name: "iris", Version: "0", Digest: digest("z"), CreatedAt: t0.Add(time.Hour)}))(t)
	latest("0")
	// Equal creation times: the one created last wins.
	tie := t0.Add(2 * time.Hour)
	must(s.CreateModelVersion(bg, store.ModelVersion{Name: "iris", Version: "tie-b", Digest: digest("t"), CreatedAt: tie}))(t)
	must(s.CreateModelVersion(bg, store.ModelVersion{Name: "iris", Version: "tie-a", Digest: digest("u"), CreatedAt: tie}))(t)
	latest("tie-a")

	if err := s.SetModelArchived(bg, "iris", "", true); err != nil {
		t.Fatal(err)
	}
	_, err = s.LatestModelVersion(bg, "iris")
	wantErr(t, "all archived", err, store.ErrNotFound)
	if err := s.SetModelArchived(bg, "iris", "1", false); err != nil {
		t.Fatal(err)
	}
	latest("1")
}

func testModelList(t *testing.T, s store.Store) {
	t0 := time.Now().UTC().Add(-time.Hour)
	mk := func(name, version string, minute int, archived bool) store.ModelVersion {
		return store.ModelVersion{Name: name, Version: version, Digest: digest(name + version),
			CreatedAt: t0.Add(time.Duration(minute) * time.Minute), Archived: archived}
	}
	all := []store.ModelVersion{
		mk("rose", "1", 1, false),
		mk("iris", "1", 2, false),
		mk("iris", "2", 3, true),
		mk("iris", "3", 4, false),
		mk("rose", "2", 5, true),
	}
	for _, m := range all {
		must(s.CreateModelVersion(bg, m))(t)
	}
	iris1, iris2, iris3, rose1, rose2 := all[1], all[2], all[3], all[0], all[4]
	tests := []struct {
		name string
		f    store.ModelFilter
		want []store.ModelVersion
	}{
		{"default hides archived", store.ModelFilter{}, []store.ModelVersion{iris3, iris1, rose1}},
		{"include archived", store.ModelFilter{IncludeArchived: true}, []store.ModelVersion{iris3, iris2, iris1, rose2, rose1}},
		{"archived only", store.ModelFilter{ArchivedOnly: true}, []store.ModelVersion{iris2, rose2}},
		{"by name", store.ModelFilter{Name: "iris"}, []store.ModelVersion{iris3, iris1}},
		{"by name with archived", store.ModelFilter{Name: "iris", IncludeArchived: true}, []store.ModelVersion{iris3, iris2, iris1}},
		{"limit", store.ModelFilter{IncludeArchived: true, Limit: 2}, []store.ModelVersion{iris3, iris2}},
		{"unknown name", store.ModelFilter{Name: "tulip"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := must(s.ListModels(bg, tt.f))(t)
			diff(t, "ListModels", got, tt.want)
		})
	}
}

func testModelArchive(t *testing.T, s store.Store) {
	for _, v := range []string{"1", "2"} {
		must(s.CreateModelVersion(bg, store.ModelVersion{Name: "iris", Version: v, Digest: digest(v)}))(t)
	}
	archived := func(version string) bool {
		t.Helper()
		return must(s.GetModelVersion(bg, "iris", version))(t).Archived
	}
	if err := s.SetModelArchived(bg, "iris", "1", true); err != nil {
		t.Fatal(err)
	}
	if !archived("1") || archived("2") {
		t.Errorf("archive one version: got 1=%v 2=%v, want true false", archived("1"), archived("2"))
	}
	// Archiving again is fine.
	if err := s.SetModelArchived(bg, "iris", "1", true); err != nil {
		t.Errorf("archive twice: got %v, want nil", err)
	}
	if err := s.SetModelArchived(bg, "iris", "", true); err != nil {
		t.Fatal(err)
	}
	if !archived("1") || !archived("2") {
		t.Errorf("archive all: got 1=%v 2=%v, want true true", archived("1"), archived("2"))
	}
	if err := s.SetModelArchived(bg, "iris", "", false); err != nil {
		t.Fatal(err)
	}
	if archived("1") || archived("2") {
		t.Errorf("restore all: got 1=%v 2=%v, want false false", archived("1"), archived("2"))
	}
	wantErr(t, "unknown version", s.SetModelArchived(bg, "iris", "9", true), store.ErrNotFound)
	wantErr(t, "unknown name", s.SetModelArchived(bg, "rose", "", true), store.ErrNotFound)
}
