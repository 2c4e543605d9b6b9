// Package images makes sure the container image a deployment's plan runs is
// on the container engine before its instances start: built from the
// environment's build context (once per context digest: the tag is derived
// from it, so a second deployment of the same context finds the image), or
// pulled when a registry is reachable. Builds and pulls run in the
// background, so a slow build never holds up other deployments; their
// progress becomes deployment events (what `online-deployment create`
// prints while it waits) and each build's whole log is kept in a file that
// `online-deployment get-logs` shows.
//
// It also serves the API's image builds (`plumbline image build`, the
// `az acr build` equivalent).
//
// This package may import resolve and store; it must not import
// a driver, the reconciler, the gateway or the API server: the engine is
// the Engine interface.
package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// Engine is the container engine (driver/docker's Driver).
type Engine interface {
	ImageExists(ctx context.Context, ref string) (bool, error)
	Pull(ctx context.Context, ref string, out io.Writer) error
	// Build builds from a tar of a context; dockerfile is relative to it.
	Build(ctx context.Context, contextTar io.Reader, dockerfile string, tags []string, out io.Writer) error
}

// Artifacts gives read-only host folders for artifact digests.
type Artifacts interface {
	Materialize(ctx context.Context, digest string) (string, error)
}

// Config wires a Builder.
type Config struct {
	Engine    Engine
	Artifacts Artifacts
	// ContextTar streams a tar of a folder (driver/docker.ContextTar).
	ContextTar func(dir string) io.ReadCloser
	// Store receives the deployments' progress events; nil: none.
	Store store.Store
	// LogDir keeps one log file per built image (created 0700).
	LogDir string
	// Notify is called when a build or pull ends (the reconciler's Notify).
	Notify func()
	// Timeout bounds one build or pull (default 1h).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Builder prepares images. It is safe for concurrent use.
type Builder struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex      // protects jobs
	jobs map[string]*job // by image ref
}

// job is one build or pull in flight, or finished and not yet collected.
type job struct {
	done    bool
	err     error
	waiters map[[2]string]bool // endpoint, deployment
}

// New returns a Builder.
func New(cfg Config) *Builder {
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Hour
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Builder{cfg: cfg, log: cfg.Logger, jobs: map[string]*job{}}
}

// ErrBuild marks a failed build or pull: the user must change the build
// context or the image reference.
var ErrBuild = errors.New("image not available")

// Prepare reports whether the plan's image is on the engine. When it is
// not, it starts building it (a build context) or pulling it, reports
// false, and calls Config.Notify when done; the caller asks again. A failed
// build or pull is returned once, as an error wrapping ErrBuild whose text
// is the deployment's reason; asking again starts over.
func (b *Builder) Prepare(ctx context.Context, p *resolve.Plan) (bool, error) {
	if p.Image == "" {
		return true, nil
	}
	who := [2]string{p.Endpoint, p.Deployment}
	b.mu.Lock()
	if j := b.jobs[p.Image]; j != nil {
		j.waiters[who] = true
		if !j.done {
			b.mu.Unlock()
			return false, nil
		}
		delete(b.jobs, p.Image)
		b.mu.Unlock()
		return j.err == nil, j.err
	}
	b.mu.Unlock()

	ok, err := b.cfg.Engine.ImageExists(ctx, p.Image)
	if err != nil {
		return false, err // the engine is unreachable: retried on the next pass
	}
	if ok {
		return true, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.jobs[p.Image] != nil { // another caller started it meanwhile
		b.jobs[p.Image].waiters[who] = true
		return false, nil
	}
	j := &job{waiters: map[[2]string]bool{who: true}}
	b.jobs[p.Image] = j
	plan := *p
	go b.run(j, &plan)
	return false, nil
}

// run builds or pulls the plan's image and records the outcome in j.
func (b *Builder) run(j *job, p *resolve.Plan) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	var err error
	if p.BuildDigest != "" {
		err = b.buildPlan(ctx, j, p)
	} else {
		err = b.pull(ctx, j, p)
	}
	b.mu.Lock()
	j.done, j.err = true, err
	b.mu.Unlock()
	b.cfg.Notify()
}

func (b *Builder) pull(ctx context.Context, j *job, p *resolve.Plan) error {
	b.event(j, "Normal", "Pulling", "Pulling image "+p.Image+" (it is not on this machine)")
	if err := b.cfg.Engine.Pull(ctx, p.Image, io.Discard); err != nil {
		return fmt.Errorf("ImagePullFailure: image %s is not on this machine and could not be pulled (%v); build it with: plumbline image build DIR -t %s, or load it into the engine: %w",
			p.Image, err, p.Image, ErrBuild)
	}
	b.event(j, "Normal", "Pulled", "Pulled image "+p.Image)
	return nil
}

// buildPlan builds the plan's build context into p.Image.
func (b *Builder) buildPlan(ctx context.Context, j *job, p *resolve.Plan) error {
	root, dockerfile, _ := strings.Cut(p.Dockerfile, "/")
	dir, err := b.cfg.Artifacts.Materialize(ctx, p.BuildDigest)
	if err != nil {
		return fmt.Errorf("build context %s: %w", p.BuildDigest, err)
	}
	b.event(j, "Normal", "Building", fmt.Sprintf("Building image %s from the build context %s (%s)", p.Image, root, dockerfile))
	begin := time.Now()
	err = b.build(ctx, filepath.Join(dir, root), dockerfile, []string{p.Image}, b.LogPath(p.Image), func(step string) {
		b.event(j, "Normal", "Building", step)
	})
	if err != nil {
		return fmt.Errorf("ImageBuildFailure: %v (the whole build log: plumbline online-deployment get-logs --container image-build): %w", err, ErrBuild)
	}
	b.event(j, "Normal", "Built", fmt.Sprintf("Built image %s in %.1fs", p.Image, time.Since(begin).Seconds()))
	return nil
}

// stepLine matches a builder's line at each Dockerfile instruction.
var stepLine = regexp.MustCompile(`^(STEP|Step) \d+/\d+ ?:`)

// build builds dir into tags, writing the log to logPath (and to extra, if
// not nil) and calling step at each Dockerfile instruction.
func (b *Builder) build(ctx context.Context, dir, dockerfile string, tags []string, logPath string, step func(string), extra ...io.Writer) error {
	if err := os.MkdirAll(b.cfg.LogDir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	lw := &lineWriter{out: io.MultiWriter(append([]io.Writer{f}, extra...)...), onLine: func(line string) {
		if step != nil && stepLine.MatchString(line) {
			step(line)
		}
	}}
	tarball := b.cfg.ContextTar(dir)
	defer tarball.Close()
	return b.cfg.Engine.Build(ctx, tarball, dockerfile, tags, lw)
}

// LogPath is the build log of an image ref.
func (b *Builder) LogPath(ref string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, ref)
	return filepath.Join(b.cfg.LogDir, safe+".log")
}

// PlanLog is the build log of a plan's image, "" when plumbline does not
// build it.
func (b *Builder) PlanLog(p *resolve.Plan) string {
	if p == nil || p.BuildDigest == "" || p.Image == "" {
		return ""
	}
	return b.LogPath(p.Image)
}

// BuildContext builds an uploaded build context (an artifact digest) into
// tags, streaming the log to out: `plumbline image build`.
func (b *Builder) BuildContext(ctx context.Context, contextDigest, dockerfile string, tags []string, out io.Writer) error {
	dir, err := b.cfg.Artifacts.Materialize(ctx, contextDigest)
	if err != nil {
		return fmt.Errorf("build context %s: %w", contextDigest, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) == 1 && entries[0].IsDir() {
		dir = filepath.Join(dir, entries[0].Name()) // the uploaded folder
	}
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	dockerfile = path.Clean(strings.TrimPrefix(dockerfile, "./"))
	if _, err := os.Stat(filepath.Join(dir, dockerfile)); err != nil {
		return fmt.Errorf("%s is not in the build context: %w", dockerfile, ErrBuild)
	}
	return b.build(ctx, dir, dockerfile, tags, b.LogPath(tags[0]), nil, out)
}

// Exists reports whether the engine has the image.
func (b *Builder) Exists(ctx context.Context, ref string) (bool, error) {
	return b.cfg.Engine.ImageExists(ctx, ref)
}

// event records a progress event for every deployment waiting on j.
func (b *Builder) event(j *job, typ, reason, msg string) {
	b.mu.Lock()
	var who [][2]string
	for w := range j.waiters {
		who = append(who, w)
	}
	b.mu.Unlock()
	b.log.Info(msg, "reason", reason)
	if b.cfg.Store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, w := range who {
		if _, err := b.cfg.Store.AppendEvent(ctx, store.Event{Endpoint: w[0], Deployment: w[1], Type: typ, Reason: reason, Message: msg}); err != nil && !errors.Is(err, store.ErrNotFound) {
			b.log.Error("record event", "err", err)
		}
	}
}

// lineWriter passes bytes through and calls onLine for each whole line.
type lineWriter struct {
	out     io.Writer
	onLine  func(string)
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n, err := w.out.Write(p)
	w.partial = append(w.partial, p[:n]...)
	for {
		i := strings.IndexByte(string(w.partial), '\n')
		if i < 0 {
			break
		}
		w.onLine(strings.TrimRight(string(w.partial[:i]), "\r"))
		w.partial = w.partial[i+1:]
	}
	return n, err
}
