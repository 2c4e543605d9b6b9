package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/plumbline/plumbline/api"
	"github.com/plumbline/plumbline/internal/resolve"
	"github.com/plumbline/plumbline/internal/store"
)

// ImageService builds and inspects images on the server's container engine
// (images.Builder).
type ImageService interface {
	Exists(ctx context.Context, ref string) (bool, error)
	// BuildContext builds an uploaded build context into tags, streaming
	// the build's output to out.
	BuildContext(ctx context.Context, contextDigest, dockerfile string, tags []string, out io.Writer) error
	// PlanLog is the build log file of a plan's image ("" when plumbline
	// does not build it).
	PlanLog(p *resolve.Plan) string
}

// LogContainerBuild is get-logs' --container value for a deployment's image
// build log (next to Azure's inference-server and storage-initializer).
const LogContainerBuild = "image-build"

func (s *Server) images() (ImageService, error) {
	if s.cfg.Images == nil {
		return nil, &Error{Status: http.StatusConflict, Code: "NoContainerEngine",
			Message: "this server runs the process driver, which has no container engine; start it with plumbline serve --driver docker (and --docker-host) to build images"}
	}
	return s.cfg.Images, nil
}

// getImage answers whether the engine has an image: GET /images?ref=R.
func (s *Server) getImage(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.images()
	if err != nil {
		return err
	}
	ref := r.URL.Query().Get("ref")
	if ref == "" {
		return badRequest("ref", "give the image reference: ?ref=name:tag")
	}
	ok, err := imgs.Exists(r.Context(), ref)
	if err != nil {
		return err
	}
	if !ok {
		return notFound(ref, "image %s is not on the server's container engine", ref)
	}
	writeJSON(w, http.StatusOK, api.Image{Ref: ref})
	return nil
}

// postImageBuild builds an uploaded build context (`plumbline image build`,
// the `az acr build` equivalent). The answer streams api.BuildMessage
// lines (NDJSON): the build's output, then one with Done set.
func (s *Server) postImageBuild(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.images()
	if err != nil {
		return err
	}
	var in api.ImageBuild
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if !strings.HasPrefix(in.Context, "sha256:") || !s.cfg.Registry.Has(r.Context(), in.Context) {
		return badRequest("context", "no artifact %q: upload the build context first (POST %s/artifacts)", in.Context, prefix)
	}
	if len(in.Tags) == 0 {
		return badRequest("tags", "give the image at least one tag (-t name:tag)")
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fw := &flushWriter{w: w}
	if f, ok := w.(http.Flusher); ok {
		fw.f = f
	}
	enc := json.NewEncoder(fw)
	lw := &ndjsonLines{enc: enc}
	err = imgs.BuildContext(r.Context(), in.Context, in.Dockerfile, in.Tags, lw)
	lw.flush()
	done := api.BuildMessage{Done: true, Image: in.Tags[0]}
	if err != nil {
		done.Error, done.Image = err.Error(), ""
	}
	return enc.Encode(done)
}

// ndjsonLines turns written text into one BuildMessage per line.
type ndjsonLines struct {
	enc     *json.Encoder
	partial string
}

func (l *ndjsonLines) Write(p []byte) (int, error) {
	text := l.partial + string(p)
	lines := strings.Split(text, "\n")
	l.partial = lines[len(lines)-1]
	for _, line := range lines[:len(lines)-1] {
		if err := l.enc.Encode(api.BuildMessage{Line: line}); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (l *ndjsonLines) flush() {
	if l.partial != "" {
		_ = l.enc.Encode(api.BuildMessage{Line: l.partial})
		l.partial = ""
	}
}

// writeBuildLog writes the last lines of the deployment's image build log,
// and reports whether there was one.
func (s *Server) writeBuildLog(w io.Writer, dep store.Deployment, lines int) (bool, error) {
	if s.cfg.Images == nil {
		return false, nil
	}
	rec, err := resolve.DecodeRecord(dep.Spec)
	if err != nil || rec.Plan == nil {
		return false, nil
	}
	path := s.cfg.Images.PlanLog(rec.Plan)
	if path == "" {
		return false, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	var tail []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		tail = append(tail, sc.Text())
		if lines > 0 && len(tail) > lines {
			tail = tail[1:]
		}
	}
	for _, line := range tail {
		if _, err := io.WriteString(w, line+"\n"); err != nil {
			return true, err
		}
	}
	return true, sc.Err()
}
