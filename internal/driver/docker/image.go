package docker

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// ImageExists reports whether the engine has the image ref.
func (d *Driver) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := d.cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("inspect image %s: %w", ref, err)
}

// Pull pulls ref from its registry, writing progress lines to out.
func (d *Driver) Pull(ctx context.Context, ref string, out io.Writer) error {
	resp, err := d.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer resp.Close()
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		if msg.Error != nil {
			return fmt.Errorf("pull %s: %s", ref, msg.Error.Message)
		}
		if msg.Status != "" {
			fmt.Fprintln(out, strings.TrimSpace(msg.ID+" "+msg.Status))
		}
	}
	return nil
}

// BuildError is a failed build: the step that failed and the build's last
// lines.
type BuildError struct {
	// Step is the Dockerfile instruction that failed ("STEP 2/6: RUN …"),
	// "" if the build failed before any.
	Step string
	// Message says why.
	Message string
	// LastLines are the build log's last lines.
	LastLines []string
}

func (e *BuildError) Error() string {
	var b strings.Builder
	b.WriteString("image build failed")
	if e.Step != "" {
		b.WriteString(" at " + e.Step)
	}
	b.WriteString(": " + e.Message)
	if len(e.LastLines) > 0 {
		b.WriteString("; last build lines: " + strings.Join(e.LastLines, " | "))
	}
	return b.String()
}

// rUnavailable matches R's warning when install.packages() cannot find a
// package (its repository unreachable, or no such package), which R
// reports with exit status 0.
var rUnavailable = regexp.MustCompile(`package ['‘’"]?[A-Za-z0-9._]+['‘’"]? (is|are) not available`)

// stepLine matches the line a builder prints at each Dockerfile
// instruction: "STEP 2/6: RUN …" (Podman) or "Step 2/6 : RUN …" (Docker).
var stepLine = regexp.MustCompile(`^(STEP|Step) \d+/\d+ ?:`)

// Build builds an image from a tar of a build context through the Engine
// API, writing the build's output to out line by line as it comes. A step
// that fails, or an R install.packages() that could not install a package
// (which exits 0), fails the build with a *BuildError; the image is then not
// tagged (or its tags are removed).
//
// dockerfile is the Dockerfile's path inside the context ("" means
// "Dockerfile"); tags name the image (at least one). Base images are used
// as they are on the engine when present (no pull of newer ones: without a
// registry that is the only way).
func (d *Driver) Build(ctx context.Context, contextTar io.Reader, dockerfile string, tags []string, out io.Writer) error {
	if len(tags) == 0 {
		return errors.New("image build: give the image a tag")
	}
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	res, err := d.cli.ImageBuild(ctx, contextTar, client.ImageBuildOptions{
		Tags: tags, Dockerfile: dockerfile, Labels: map[string]string{"plumbline.build": "1"},
		Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	defer res.Body.Close()

	var (
		step    string
		last    []string
		partial string
		rFail   string
	)
	keep := func(line string) {
		last = append(last, line)
		if len(last) > 10 {
			last = last[1:]
		}
	}
	dec := json.NewDecoder(bufio.NewReader(res.Body))
	for {
		var msg jsonstream.Message
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("image build: reading the engine's answer: %w", err)
		}
		if msg.Error != nil {
			return &BuildError{Step: step, Message: strings.TrimSpace(msg.Error.Message), LastLines: last}
		}
		text := msg.Stream
		if text == "" && msg.Status != "" {
			text = msg.Status + "\n"
		}
		// Stream chunks are not always whole lines.
		text = partial + text
		lines := strings.Split(text, "\n")
		partial = lines[len(lines)-1]
		for _, line := range lines[:len(lines)-1] {
			line = strings.TrimRight(line, "\r")
			fmt.Fprintln(out, line)
			if strings.TrimSpace(line) == "" {
				continue
			}
			keep(line)
			if stepLine.MatchString(line) {
				step = line
			}
			if rFail == "" && rUnavailable.MatchString(line) {
				rFail = step + "\x00" + strings.TrimSpace(line)
			}
		}
	}
	if partial != "" {
		fmt.Fprintln(out, partial)
		keep(partial)
	}
	if rFail != "" {
		for _, tag := range tags {
			if _, err := d.cli.ImageRemove(context.WithoutCancel(ctx), tag, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
				d.log.Warn("remove the image of a failed build", "tag", tag, "err", err)
			}
		}
		s, line, _ := strings.Cut(rFail, "\x00")
		return &BuildError{Step: s, Message: "R could not install a package (install.packages() exits 0 when its repository is unreachable): " + line +
			"; install the package from Debian instead (RUN apt-get update && apt-get install -y r-cran-<name>) or make its repository reachable", LastLines: last}
	}
	return nil
}

// ContextTar streams a tar of the folder dir, the build context, with paths
// relative to it. Symbolic links are kept as links; other special files are
// skipped.
func ContextTar(dir string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil || rel == "." {
				return err
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			link := ""
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				if link, err = os.Readlink(p); err != nil {
					return err
				}
			case !fi.Mode().IsRegular() && !fi.IsDir():
				return nil
			}
			hdr, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			hdr.Name = filepath.ToSlash(rel)
			if fi.IsDir() {
				hdr.Name += "/"
			}
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}
