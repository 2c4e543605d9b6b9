package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/blob"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/tmpfs"
)

func (f *fixture) client() *api.Client {
	f.t.Helper()
	c, err := api.NewClient(f.srv.URL, admin, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// TestUploadDiskFull is defect 6: a full disk is a 507 whose message says
// the disk is full and what to do, not "internal error; see the server log".
func TestUploadDiskFull(t *testing.T) {
	f := newFixtureBlobs(t, tmpfs.Mount(t, 1<<20))
	src := writeFiles(t, t.TempDir(), map[string]string{"models/big.bin": strings.Repeat("0123456789abcdef", 128<<10)}) // 2 MiB
	var buf bytes.Buffer
	if err := registry.WriteTar(context.Background(), &buf, filepath.Join(src, "models"), nil); err != nil {
		t.Fatal(err)
	}
	status, body := f.do("POST", "/artifacts", "application/x-tar", buf.Bytes())
	if status != http.StatusInsufficientStorage {
		t.Fatalf("upload to a full disk: got %d %s, want 507", status, body)
	}
	var er api.ErrorResponse
	if err := json.Unmarshal(body, &er); err != nil || er.Error == nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if er.Error.Code != "InsufficientStorage" || !strings.Contains(er.Error.Message, "disk is full") || !strings.Contains(er.Error.Message, "free space") {
		t.Errorf("error: got %+v, want InsufficientStorage saying the disk is full and to free space", er.Error)
	}
}

// TestFsckAPI: a corrupt blob is reported over the API with the model that
// uses it, a client's copy repairs it through PUT /blobs/{digest}, and the
// report comes after progress lines.
func TestFsckAPI(t *testing.T) {
	dir := t.TempDir()
	f := newFixtureBlobs(t, dir)
	src := writeFiles(t, t.TempDir(), map[string]string{"models/crate.bin": strings.Repeat("crate", 1000), "models/x.txt": "x"})
	a := f.upload(filepath.Join(src, "models"))
	f.mustDo("POST", "/models", []byte(`{"name":"iris-crate","version":"1","artifact":"`+a.Digest+`"}`), http.StatusCreated)

	ctx := context.Background()
	c := f.client()
	rep, err := c.Fsck(ctx, api.FsckRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || rep.Blobs != 3 || rep.Artifacts != 1 {
		t.Fatalf("clean: got %+v", rep)
	}

	// Corrupt crate.bin's blob in place, keeping its size.
	sum := registryDigest(t, filepath.Join(src, "models", "crate.bin"))
	p := filepath.Join(dir, "blobs", "sha256", sum[7:9], sum[7:])
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte(strings.Repeat("CRATE", 1000)), 0o444); err != nil {
		t.Fatal(err)
	}
	if has, err := c.HasArtifact(ctx, a.Digest); err != nil || has {
		t.Errorf("HEAD artifact with a corrupt blob: got %v %v, want false (so the client uploads again)", has, err)
	}
	var calls int
	rep, err = c.Fsck(ctx, api.FsckRequest{Repair: true}, func(done, total int64) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Error("no progress line")
	}
	if len(rep.Problems) != 1 || rep.Unrepaired() != 1 {
		t.Fatalf("problems: got %+v, want one unrepaired", rep.Problems)
	}
	pr := rep.Problems[0]
	if pr.Kind != "corrupt-blob" || pr.Digest != sum || len(pr.UsedBy) != 1 || pr.UsedBy[0] != "model iris-crate:1" ||
		len(pr.Files) != 1 || pr.Files[0].Path != "models/crate.bin" {
		t.Errorf("problem: got %+v", pr)
	}
	if f.rt.notified == 0 {
		t.Error("a repair did not wake the reconciler")
	}

	// Wrong bytes are refused; the right ones repair it.
	if _, err := c.PutBlob(ctx, sum, strings.NewReader("nope"), 4); err == nil || !strings.Contains(err.Error(), "hash to") {
		t.Errorf("PutBlob of other bytes: got %v, want a 400 saying what they hash to", err)
	}
	file, _ := os.Open(filepath.Join(src, "models", "crate.bin"))
	defer file.Close()
	fi, _ := file.Stat()
	if created, err := c.PutBlob(ctx, sum, file, fi.Size()); err != nil || !created {
		t.Fatalf("PutBlob: got %v %v, want created", created, err)
	}
	rep, err = c.Fsck(ctx, api.FsckRequest{}, nil)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("after the repair: %+v %v", rep, err)
	}
	if has, _ := c.HasArtifact(ctx, a.Digest); !has {
		t.Error("HEAD artifact after the repair: got false")
	}
}

func TestGCAPI(t *testing.T) {
	f := newFixture(t)
	src := writeFiles(t, t.TempDir(), map[string]string{"orphan/a.bin": "never registered"})
	a := f.upload(filepath.Join(src, "orphan"))
	c := f.client()
	ctx := context.Background()
	rep, err := c.GC(ctx, api.GCRequest{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != 0 || rep.Young != 2 || rep.MinAge != "1h0m0s" {
		t.Errorf("default min age keeps a fresh upload: got %+v", rep)
	}
	rep, err = c.GC(ctx, api.GCRequest{MinAge: "0s"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != 2 || rep.DryRun {
		t.Errorf("min age 0: got %+v, want the manifest and the file removed", rep)
	}
	if has, _ := c.HasArtifact(ctx, a.Digest); has {
		t.Error("collected artifact still there")
	}
	if _, err := c.GC(ctx, api.GCRequest{MinAge: "soon"}); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Errorf("bad min_age: got %v", err)
	}
}

func registryDigest(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return blob.Digest(b)
}
