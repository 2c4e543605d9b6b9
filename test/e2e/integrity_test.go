package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCorruptBlobFsckRepair is defect 2 end to end: the model's blob is
// overwritten by hand with bytes of the same size while the seed's
// deployment serves. plumbline fsck names the blob, the file it holds and
// the model and deployment that use it; the instance, killed, cannot come
// back from the bad bytes (the deployment says why, it does not crash-loop
// on them); fsck --repair --from the model folder sends the right bytes,
// and the deployment serves again.
func TestCorruptBlobFsckRepair(t *testing.T) {
	dir := irisFolder(t)
	dd := newDataDir(t)
	s := startServer(t, dd)
	s.mustIn(t, dir, "model", "create", "--name", "iris-crate", "--path", "models")
	s.mustIn(t, dir, "online-endpoint", "create", "-f", "endpoint.yml", "--set", "auth_mode=key")
	s.mustIn(t, dir, "online-deployment", "create", "-f", "deployment.yml", "--all-traffic", "--skip-script-validation")
	c := s.httpClient(t)
	uri := s.endpoint(t, irisEndpoint).ScoringURI
	key := s.keys(t, irisEndpoint).PrimaryKey
	body := sampleRequest(t, dir)
	if rep := score(t, c, uri, key, "", body); rep.status != http.StatusOK {
		t.Fatalf("before: got %d %s", rep.status, rep.body)
	}

	// Overwrite crate.bin's blob in place, same size.
	crate, err := os.ReadFile(filepath.Join(dir, "models", "crate.bin"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(crate)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	blobPath := filepath.Join(dd, "blobs", "sha256", digest[7:9], digest[7:])
	bad := slices.Clone(crate)
	for i := range bad {
		bad[i] ^= 0x55
	}
	os.Chmod(blobPath, 0o644)
	f, err := os.OpenFile(blobPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bad, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.Chmod(blobPath, 0o444)

	// fsck names it, with its file and its users.
	r := s.cli(t, "fsck", "-o", "table")
	t.Logf("plumbline fsck (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 1 {
		t.Errorf("fsck with a corrupt blob: exit %d, want 1", r.code)
	}
	var rep struct {
		Problems []struct {
			Kind   string   `json:"kind"`
			Digest string   `json:"digest"`
			UsedBy []string `json:"used_by"`
			Files  []struct {
				Path string `json:"path"`
			} `json:"files"`
		} `json:"problems"`
	}
	r = s.cli(t, "fsck", "-o", "json")
	decodeJSON(t, r, &rep)
	found := false
	for _, p := range rep.Problems {
		if p.Kind == "corrupt-blob" && p.Digest == digest {
			found = true
			if !slices.Contains(p.UsedBy, "deployment "+irisEndpoint+"/blue") || !slices.Contains(p.UsedBy, "model iris-crate:1") ||
				len(p.Files) == 0 || p.Files[0].Path != "models/crate.bin" {
				t.Errorf("the problem: used by %v, files %v; want the deployment, the model and models/crate.bin", p.UsedBy, p.Files)
			}
		}
	}
	if !found {
		t.Fatalf("fsck did not name %s: %+v", digest, rep.Problems)
	}

	// The instance, killed, cannot start from the bad bytes.
	rec := record(t, dd, irisEndpoint, "blue", "blue-0")
	syscall.Kill(rec.PID, syscall.SIGKILL)
	waitFor(t, 60*time.Second, "an event naming the corrupt blob", func() (bool, string) {
		var msgs []string
		for _, e := range s.events(t, irisEndpoint, "blue") {
			if strings.Contains(e.Message, "corrupt") && strings.Contains(e.Message, digest) {
				return true, ""
			}
			msgs = append(msgs, e.Reason+": "+e.Message)
		}
		return false, strings.Join(msgs, "\n")
	})

	// Repair from the user's folder; the deployment serves again.
	r = s.cliIn(t, dir, "fsck", "--repair", "--from", "models")
	t.Logf("plumbline fsck --repair --from models (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	if r.code != 0 {
		t.Fatalf("fsck --repair --from models: exit %d", r.code)
	}
	s.waitDeploymentReady(t, irisEndpoint, "blue", 1, 90*time.Second)
	if rep := score(t, c, uri, key, "", body); rep.status != http.StatusOK || strings.TrimSpace(rep.body) != irisPrediction {
		t.Errorf("after the repair: got %d %s, want 200 %s", rep.status, rep.body, irisPrediction)
	}
	s.must(t, "fsck")
}
