package images_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plumbline/plumbline/internal/images"
	"github.com/plumbline/plumbline/internal/resolve"
)

// engine is a fake container engine at the process boundary: images it
// has, and builds that print a log and succeed or fail.
type engine struct {
	mu     sync.Mutex
	have   map[string]bool
	builds int
	fail   error
	gate   chan struct{} // a build waits for it when not nil
}

func (e *engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.have[ref], nil
}

func (e *engine) Pull(ctx context.Context, ref string, out io.Writer) error {
	return errors.New("no registry reachable")
}

func (e *engine) Build(ctx context.Context, tar io.Reader, dockerfile string, tags []string, out io.Writer) error {
	io.Copy(io.Discard, tar)
	if e.gate != nil {
		<-e.gate
	}
	io.WriteString(out, "STEP 1/2: FROM base\nSTEP 2/2: RUN make\nbuilt\n")
	e.mu.Lock()
	defer e.mu.Unlock()
	e.builds++
	if e.fail != nil {
		return e.fail
	}
	for _, t := range tags {
		e.have[t] = true
	}
	return nil
}

type dirs struct{ root string }

func (d dirs) Materialize(ctx context.Context, digest string) (string, error) { return d.root, nil }

func newBuilder(t *testing.T, e *engine) (*images.Builder, chan struct{}) {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "ctx"), 0o755)
	os.WriteFile(filepath.Join(root, "ctx", "Dockerfile"), []byte("FROM base\n"), 0o644)
	done := make(chan struct{}, 10)
	b := images.New(images.Config{
		Engine: e, Artifacts: dirs{root}, LogDir: filepath.Join(root, "logs"),
		ContextTar: func(string) io.ReadCloser { return io.NopCloser(strings.NewReader("tar")) },
		Notify:     func() { done <- struct{}{} },
	})
	return b, done
}

func wait(t *testing.T, done chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the builder did not notify")
	}
}

func TestPrepareBuildsOnceAndKeepsTheLog(t *testing.T) {
	e := &engine{have: map[string]bool{}, gate: make(chan struct{})}
	b, done := newBuilder(t, e)
	p := &resolve.Plan{Endpoint: "ep", Deployment: "blue", Image: "plumbline/build:abc", BuildDigest: "sha256:x", Dockerfile: "ctx/Dockerfile"}
	for i := 0; i < 3; i++ { // asked again while building: still not ready, one build
		if ready, err := b.Prepare(t.Context(), p); ready || err != nil {
			t.Fatalf("Prepare while building = %v, %v; want false, nil", ready, err)
		}
	}
	close(e.gate)
	wait(t, done)
	if ready, err := b.Prepare(t.Context(), p); !ready || err != nil {
		t.Fatalf("Prepare after the build = %v, %v; want ready", ready, err)
	}
	if ready, _ := b.Prepare(t.Context(), p); !ready || e.builds != 1 {
		t.Errorf("a second deployment of the same context: ready %v after %d builds, want ready after 1", ready, e.builds)
	}
	log, err := os.ReadFile(b.PlanLog(p))
	if err != nil || !strings.Contains(string(log), "STEP 2/2: RUN make") {
		t.Errorf("build log = %q, %v; want the build's output", log, err)
	}
}

func TestPrepareFailures(t *testing.T) {
	e := &engine{have: map[string]bool{}, fail: errors.New("image build failed at STEP 2/2: RUN make: exit status 2")}
	b, done := newBuilder(t, e)
	p := &resolve.Plan{Endpoint: "ep", Deployment: "blue", Image: "plumbline/build:abc", BuildDigest: "sha256:x", Dockerfile: "ctx/Dockerfile"}
	b.Prepare(t.Context(), p)
	wait(t, done)
	_, err := b.Prepare(t.Context(), p)
	if !errors.Is(err, images.ErrBuild) || !strings.HasPrefix(err.Error(), "ImageBuildFailure: image build failed at STEP 2/2") {
		t.Errorf("Prepare after a failed build = %v, want ImageBuildFailure with the step", err)
	}
	// Asked again (the user fixed something outside, or retries): it builds again.
	if ready, err := b.Prepare(t.Context(), p); ready || err != nil {
		t.Errorf("Prepare after the failure was reported = %v, %v; want a new build started", ready, err)
	}
	wait(t, done)

	pull := &resolve.Plan{Endpoint: "ep", Deployment: "green", Image: "registry.example/app:1"}
	b.Prepare(t.Context(), pull)
	wait(t, done)
	_, err = b.Prepare(t.Context(), pull)
	if !errors.Is(err, images.ErrBuild) || !strings.Contains(err.Error(), "image registry.example/app:1 is not on this machine and could not be pulled") ||
		!strings.Contains(err.Error(), "plumbline image build DIR -t registry.example/app:1") {
		t.Errorf("Prepare of an image that cannot be pulled = %v, want ImagePullFailure naming the image and the fix", err)
	}
	if ready, err := b.Prepare(t.Context(), &resolve.Plan{Runtime: "plumber"}); !ready || err != nil {
		t.Errorf("a plan without an image = %v, %v; want ready", ready, err)
	}
}
