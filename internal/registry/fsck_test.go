package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/store"
)

// deployUsing records a deployment whose resolved spec pins digest, as the
// API stores one.
func deployUsing(t *testing.T, f *fixture, endpoint, name, digest string) {
	t.Helper()
	if _, err := f.st.GetEndpoint(bg, endpoint); errors.Is(err, store.ErrNotFound) {
		if _, err := f.st.CreateEndpoint(bg, store.Endpoint{Name: endpoint, Spec: json.RawMessage(`{}`), AuthMode: "key"}); err != nil {
			t.Fatal(err)
		}
	}
	spec, _ := json.Marshal(map[string]any{"plan": map[string]any{"model_digest": digest}})
	if _, err := f.st.CreateDeployment(bg, store.Deployment{Endpoint: endpoint, Name: name, Spec: spec}); err != nil {
		t.Fatal(err)
	}
}

func problemsOf(rep FsckReport, kind string) []Problem {
	var out []Problem
	for _, p := range rep.Problems {
		if p.Kind == kind {
			out = append(out, p)
		}
	}
	return out
}

func TestFsckClean(t *testing.T) {
	f := newFixture(t, Limits{})
	_, art := ingestFolder(t, f)
	if _, _, err := f.reg.CreateModel(bg, store.ModelVersion{Name: "iris", Version: "1", Digest: art.Digest}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Materialize(bg, art.Digest); err != nil {
		t.Fatal(err)
	}
	var progress []int64
	rep, err := f.reg.Fsck(bg, FsckOptions{Progress: func(done, total int64) { progress = append(progress, done) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || !rep.OK() {
		t.Errorf("problems on a clean store: %+v", rep.Problems)
	}
	if rep.Blobs == 0 || rep.Artifacts != 1 || rep.CacheTrees != 1 || rep.Bytes < 300_000 {
		t.Errorf("counts: got %d blobs (%d bytes), %d artifacts, %d trees", rep.Blobs, rep.Bytes, rep.Artifacts, rep.CacheTrees)
	}
	if len(progress) != rep.Blobs || progress[len(progress)-1] != rep.Bytes {
		t.Errorf("progress: got %v, want %d calls ending at %d", progress, rep.Blobs, rep.Bytes)
	}
}

// TestFsckCorruptBlob: a corrupt blob is named with the file that holds it
// and the model and deployment that use it; the repair takes a good copy
// from the cache when there is one, and says how to fix it when not.
func TestFsckCorruptBlob(t *testing.T) {
	f := newFixture(t, Limits{})
	_, art := ingestFolder(t, f)
	if _, _, err := f.reg.CreateModel(bg, store.ModelVersion{Name: "iris", Version: "1", Digest: art.Digest}); err != nil {
		t.Fatal(err)
	}
	deployUsing(t, f, "r-endpoint-iris", "blue", art.Digest)
	dir, err := f.reg.Materialize(bg, art.Digest)
	if err != nil {
		t.Fatal(err)
	}
	crate := entryDigest(t, f, art.Digest, "models/crate.bin")
	script := entryDigest(t, f, art.Digest, "models/run.sh") // an executable: the tree holds a copy
	flipBytes(t, f.blobs.Path(crate))
	flipBytes(t, f.blobs.Path(script))

	rep, err := f.reg.Fsck(bg, FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	corrupt := problemsOf(rep, ProblemCorruptBlob)
	if len(corrupt) != 2 || rep.OK() {
		t.Fatalf("corrupt blobs: got %+v, want 2", rep.Problems)
	}
	for _, p := range corrupt {
		if !slices.Equal(p.UsedBy, []string{"deployment r-endpoint-iris/blue", "model iris:1"}) {
			t.Errorf("%s used by: got %v", p.Digest, p.UsedBy)
		}
		if len(p.Files) != 1 || p.Files[0].Artifact != art.Digest {
			t.Errorf("%s files: got %v", p.Digest, p.Files)
		}
		if p.Repaired {
			t.Errorf("%s repaired without --repair", p.Digest)
		}
	}
	// The tree hard-linked to crate.bin's blob shows the bad bytes too.
	if d := problemsOf(rep, ProblemDamagedCache); len(d) != 1 || d[0].Digest != art.Digest || d[0].Repaired {
		t.Errorf("damaged cache: got %+v", d)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("fsck without --repair removed the tree: %v", err)
	}

	rep, err = f.reg.Fsck(bg, FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problemsOf(rep, ProblemCorruptBlob) {
		switch p.Digest {
		case script: // the tree's copy of run.sh is good
			if !p.Repaired || !strings.Contains(p.Action, filepath.Join(dir, "models", "run.sh")) {
				t.Errorf("run.sh: got %+v, want repaired from the cached copy", p)
			}
		case crate: // only a hard link to the bad blob: no good copy here
			if p.Repaired || !strings.Contains(p.Action, "--from") || !strings.Contains(p.Action, "models/crate.bin") {
				t.Errorf("crate.bin: got %+v, want unrepaired with how to fix it", p)
			}
		}
	}
	if err := f.blobs.Verify(bg, script); err != nil {
		t.Errorf("run.sh's blob after repair: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the damaged tree was not evicted: %v", err)
	}

	// The client's copy repairs the last one (what fsck --repair --from does).
	src := writeFolder(t, t.TempDir())
	file, err := os.Open(filepath.Join(src, "crate.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := f.blobs.PutDigest(bg, file, crate); err != nil {
		t.Fatal(err)
	}
	rep, err = f.reg.Fsck(bg, FsckOptions{})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("after the repair: %+v %v", rep.Problems, err)
	}
	if _, err := f.reg.Materialize(bg, art.Digest); err != nil {
		t.Errorf("Materialize after the repair: %v", err)
	}
	// Wrong bytes for a digest are refused and change nothing.
	if _, err := f.blobs.PutDigest(bg, strings.NewReader("wrong"), crate); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Errorf("PutDigest of other bytes: got %v, want ErrDigestMismatch", err)
	}
}

func TestFsckMissingAndPartial(t *testing.T) {
	f := newFixture(t, Limits{})
	_, art := ingestFolder(t, f)
	if _, _, err := f.reg.CreateModel(bg, store.ModelVersion{Name: "iris", Version: "1", Digest: art.Digest}); err != nil {
		t.Fatal(err)
	}
	csv := entryDigest(t, f, art.Digest, "models/sub/deeper/data.csv")
	if err := os.Remove(f.blobs.Path(csv)); err != nil {
		t.Fatal(err)
	}
	// Leftovers of a kill -9 during an upload and during a materialization.
	old := time.Now().Add(-2 * time.Hour)
	put := filepath.Join(f.blobs.Dir(), ".put-42")
	os.WriteFile(put, bytes.Repeat([]byte("x"), 4096), 0o600)
	os.Chtimes(put, old, old)
	build := filepath.Join(f.dir, "cache", ".build-7")
	os.MkdirAll(build, 0o700)
	os.Chtimes(build, old, old)
	young := filepath.Join(f.blobs.Dir(), ".put-43")
	os.WriteFile(young, []byte("in progress"), 0o600)

	rep, err := f.reg.Fsck(bg, FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	missing := problemsOf(rep, ProblemMissingBlob)
	if len(missing) != 1 || missing[0].Digest != csv || !slices.Equal(missing[0].UsedBy, []string{"model iris:1"}) {
		t.Errorf("missing: got %+v", missing)
	}
	partial := problemsOf(rep, ProblemPartial)
	if len(partial) != 3 {
		t.Fatalf("partial writes: got %+v, want 3", partial)
	}
	for _, p := range partial {
		if want := p.Path != young; p.Repaired != want {
			t.Errorf("%s: repaired %v, want %v (%s)", p.Path, p.Repaired, want, p.Action)
		}
	}
	if _, err := os.Stat(put); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old partial upload kept: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("an upload in progress was removed: %v", err)
	}
}

// TestRemovePartial is defect 7's first half: what a kill -9 during an
// upload leaves is removed at the next start.
func TestRemovePartial(t *testing.T) {
	f := newFixture(t, Limits{})
	os.WriteFile(filepath.Join(f.blobs.Dir(), ".put-1"), bytes.Repeat([]byte("x"), 181<<10), 0o600)
	os.MkdirAll(filepath.Join(f.dir, "cache", ".build-2", "models"), 0o700)
	os.WriteFile(filepath.Join(f.dir, "cache", ".build-2", "models", "a"), []byte("abc"), 0o400)
	os.Chmod(filepath.Join(f.dir, "cache", ".build-2", "models"), 0o500)
	n, size, err := f.reg.RemovePartial()
	if err != nil || n != 2 || size != 181<<10+3 {
		t.Errorf("RemovePartial: got %d files, %d bytes, %v; want 2, %d, nil", n, size, err, 181<<10+3)
	}
	for _, dir := range []string{f.blobs.Dir(), filepath.Join(f.dir, "cache")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if isPartial(e.Name()) {
				t.Errorf("left: %s", e.Name())
			}
		}
	}
}

// TestGC is defect 7's second half: blobs nothing references (an upload
// refused half-way, an artifact never registered) are collected, with a dry
// run, a minimum age, and everything a model version (archived too) or a
// deployment uses kept.
func TestGC(t *testing.T) {
	f := newFixture(t, Limits{})
	_, modelArt := ingestFolder(t, f)
	if _, _, err := f.reg.CreateModel(bg, store.ModelVersion{Name: "iris", Version: "1", Digest: modelArt.Digest}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetModelArchived(bg, "iris", "1", true); err != nil {
		t.Fatal(err)
	}
	code := ingest(t, f, dir("src"), file("src/plumber.R", "#* @post /score\nfunction() 1\n"))
	deployUsing(t, f, "e1", "blue", code.Digest)
	orphan := ingest(t, f, dir("tmp"), file("tmp/big.bin", strings.Repeat("o", 10_000)), file("tmp/b.txt", "b"))
	if _, err := f.reg.Materialize(bg, orphan.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Materialize(bg, modelArt.Digest); err != nil {
		t.Fatal(err)
	}
	// A refused upload stored a file blob before the refusal.
	refused, err := f.blobs.PutBytes(bg, []byte("first file of an archive refused later"))
	if err != nil {
		t.Fatal(err)
	}

	// Young: nothing goes.
	rep, err := f.reg.GC(bg, GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != 0 || rep.Young != 4 {
		t.Errorf("young things: got %d items, %d young; want 0, 4", len(rep.Items), rep.Young)
	}

	ageAll(t, f)
	rep, err = f.reg.GC(bg, GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range rep.Items {
		got = append(got, it.Kind+" "+it.Digest)
	}
	orphanFiles := []string{entryDigest(t, f, orphan.Digest, "tmp/big.bin"), entryDigest(t, f, orphan.Digest, "tmp/b.txt")}
	want := []string{"cache-tree " + orphan.Digest}
	var blobsWant []string
	for _, d := range append(orphanFiles, orphan.Digest, refused) {
		blobsWant = append(blobsWant, "blob "+d)
	}
	slices.SortFunc(blobsWant, func(a, b string) int {
		return strings.Compare(f.blobs.Path(a[5:]), f.blobs.Path(b[5:]))
	})
	want = append(want, blobsWant...)
	if !slices.Equal(got, want) {
		t.Errorf("dry run items:\n got %v\nwant %v", got, want)
	}
	if rep.Bytes < 10_000 || !rep.DryRun {
		t.Errorf("dry run: %d bytes, dry_run %v", rep.Bytes, rep.DryRun)
	}
	if !f.blobs.Has(refused) {
		t.Fatal("a dry run removed a blob")
	}

	rep, err = f.reg.GC(bg, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != len(want) {
		t.Errorf("removed %d items, want %d", len(rep.Items), len(want))
	}
	for _, d := range append(orphanFiles, orphan.Digest, refused) {
		if f.blobs.Has(d) {
			t.Errorf("%s not collected", d)
		}
	}
	if _, err := os.Stat(filepath.Join(f.dir, "cache", orphan.Digest[7:])); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("orphan tree not collected: %v", err)
	}
	// What is used still works.
	for _, d := range []string{modelArt.Digest, code.Digest} {
		if err := f.reg.Check(bg, d); err != nil {
			t.Errorf("%s after gc: %v", d, err)
		}
		if _, err := f.reg.Materialize(bg, d); err != nil {
			t.Errorf("Materialize %s after gc: %v", d, err)
		}
	}
	if rep, err := f.reg.Fsck(bg, FsckOptions{}); err != nil || len(rep.Problems) != 0 {
		t.Errorf("fsck after gc: %+v %v", rep.Problems, err)
	}
}

// TestGCRefusesWhenUnsure: with a referenced manifest gone, the collector
// cannot know that artifact's files and removes nothing.
func TestGCRefusesWhenUnsure(t *testing.T) {
	f := newFixture(t, Limits{})
	_, art := ingestFolder(t, f)
	if _, _, err := f.reg.CreateModel(bg, store.ModelVersion{Name: "iris", Version: "1", Digest: art.Digest}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.blobs.Path(art.Digest)); err != nil {
		t.Fatal(err)
	}
	ageAll(t, f)
	_, err := f.reg.GC(bg, GCOptions{MinAge: -1})
	if !errors.Is(err, ErrGCUnsafe) || !strings.Contains(err.Error(), "model iris:1") || !strings.Contains(err.Error(), "fsck") {
		t.Fatalf("got %v, want ErrGCUnsafe naming model iris:1 and fsck", err)
	}
	n := 0
	f.blobs.Walk(bg, func(blob.Info) error { n++; return nil })
	if n == 0 {
		t.Error("blobs were removed")
	}
}

// ageAll makes every blob and cache tree two hours old.
func ageAll(t *testing.T, f *fixture) {
	t.Helper()
	old := time.Now().Add(-2 * time.Hour)
	for _, root := range []string{f.blobs.Dir(), filepath.Join(f.dir, "cache")} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && p != root {
				os.Chtimes(p, old, old)
			}
			return nil
		})
	}
}

// TestReferencesFromEnvironmentsAndImages: an environment version's build
// context is kept; an image pinned by digest ("name@sha256:…") in a
// deployment is not taken for a missing artifact.
func TestReferencesFromEnvironmentsAndImages(t *testing.T) {
	f := newFixture(t, Limits{})
	ctxArt := ingest(t, f, dir("docker-context"), file("docker-context/Dockerfile", "FROM scratch\n"))
	spec, _ := json.Marshal(map[string]any{"build": map[string]any{"path": ctxArt.Digest}})
	if _, _, err := f.reg.CreateEnvironment(bg, store.EnvironmentVersion{Name: "r-env", Version: "1", Spec: spec}, []string{ctxArt.Digest}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.CreateEndpoint(bg, store.Endpoint{Name: "e1", Spec: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	img := "registry.example/r@sha256:" + strings.Repeat("ab", 32)
	dspec, _ := json.Marshal(map[string]any{"plan": map[string]any{"image": img}})
	if _, err := f.st.CreateDeployment(bg, store.Deployment{Endpoint: "e1", Name: "blue", Spec: dspec}); err != nil {
		t.Fatal(err)
	}
	ageAll(t, f)
	rep, err := f.reg.GC(bg, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != 0 {
		t.Errorf("collected %+v; the environment's build context is in use", rep.Items)
	}
	frep, err := f.reg.Fsck(bg, FsckOptions{})
	if err != nil || len(frep.Problems) != 0 {
		t.Errorf("fsck: %+v %v", frep.Problems, err)
	}
}
