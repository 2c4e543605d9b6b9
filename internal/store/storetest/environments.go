package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/store"
)

func env(name, version, tag string) store.EnvironmentVersion {
	return store.EnvironmentVersion{
		Name: name, Version: version, Digest: digest(tag),
		Spec: json.RawMessage(`{"name":"` + name + `","image":"img-` + tag + `"}`),
	}
}

// testEnvironment covers environment versions: create and get (fields,
// UTC, a zero CreatedAt), auto versions, the same content again (a no-op),
// other content (a conflict), latest skipping archived versions, list order
// and filters, archive and restore.
func testEnvironment(t *testing.T, s store.Store) {
	created := time.Date(2025, 3, 4, 5, 6, 7, 891011000, time.FixedZone("CET", 3600))
	in := env("r-env", "1", "a")
	in.Description, in.Tags, in.CreatedAt = "R and plumber", map[string]string{"lang": "r"}, created
	got := must(s.CreateEnvironmentVersion(bg, in))(t)
	diff(t, "CreateEnvironmentVersion", got, in)
	checkUTC(t, "CreatedAt", got.CreatedAt)
	diff(t, "GetEnvironmentVersion", must(s.GetEnvironmentVersion(bg, "r-env", "1"))(t), in)
	_, err := s.GetEnvironmentVersion(bg, "r-env", "9")
	wantErr(t, "GetEnvironmentVersion(unknown)", err, store.ErrNotFound)

	// Auto versions follow the greatest integer version of the name.
	before := time.Now().Add(-time.Second)
	v2 := must(s.CreateEnvironmentVersion(bg, env("r-env", "", "b")))(t)
	if v2.Version != "2" || v2.CreatedAt.Before(before) {
		t.Errorf("auto version = %q created %v, want 2 created about now", v2.Version, v2.CreatedAt)
	}
	if v := must(s.CreateEnvironmentVersion(bg, env("py-env", "", "c")))(t); v.Version != "1" {
		t.Errorf("first auto version of another name = %q, want 1", v.Version)
	}

	// The same content again is a no-op; other content is a conflict.
	again := must(s.CreateEnvironmentVersion(bg, env("r-env", "1", "a")))(t)
	diff(t, "CreateEnvironmentVersion(same again)", again, in)
	_, err = s.CreateEnvironmentVersion(bg, env("r-env", "1", "other"))
	wantErr(t, "CreateEnvironmentVersion(other content)", err, store.ErrConflict)

	// Latest is the newest version that is not archived.
	if l := must(s.LatestEnvironmentVersion(bg, "r-env"))(t); l.Version != "2" {
		t.Errorf("latest = %q, want 2", l.Version)
	}
	must(0, s.SetEnvironmentArchived(bg, "r-env", "2", true))(t)
	if l := must(s.LatestEnvironmentVersion(bg, "r-env"))(t); l.Version != "1" {
		t.Errorf("latest with 2 archived = %q, want 1", l.Version)
	}
	if g := must(s.GetEnvironmentVersion(bg, "r-env", "2"))(t); !g.Archived {
		t.Errorf("version 2 after archive: Archived = false")
	}

	// Lists: by name, newest first; archived ones only when asked.
	names := func(f store.EnvironmentFilter) []string {
		var out []string
		for _, e := range must(s.ListEnvironments(bg, f))(t) {
			out = append(out, e.Name+":"+e.Version)
		}
		return out
	}
	diff(t, "ListEnvironments()", names(store.EnvironmentFilter{}), []string{"py-env:1", "r-env:1"})
	diff(t, "ListEnvironments(all)", names(store.EnvironmentFilter{IncludeArchived: true}), []string{"py-env:1", "r-env:2", "r-env:1"})
	diff(t, "ListEnvironments(archived)", names(store.EnvironmentFilter{ArchivedOnly: true}), []string{"r-env:2"})
	diff(t, "ListEnvironments(name, limit)", names(store.EnvironmentFilter{Name: "r-env", IncludeArchived: true, Limit: 1}), []string{"r-env:2"})

	// Archive every version, then restore one; unknown ones are not found.
	must(0, s.SetEnvironmentArchived(bg, "r-env", "", true))(t)
	_, err = s.LatestEnvironmentVersion(bg, "r-env")
	wantErr(t, "LatestEnvironmentVersion(all archived)", err, store.ErrNotFound)
	must(0, s.SetEnvironmentArchived(bg, "r-env", "1", false))(t)
	if l := must(s.LatestEnvironmentVersion(bg, "r-env"))(t); l.Version != "1" {
		t.Errorf("latest after restoring 1 = %q, want 1", l.Version)
	}
	wantErr(t, "SetEnvironmentArchived(unknown)", s.SetEnvironmentArchived(bg, "nope", "", true), store.ErrNotFound)
	wantErr(t, "SetEnvironmentArchived(unknown version)", s.SetEnvironmentArchived(bg, "r-env", "9", true), store.ErrNotFound)
}
