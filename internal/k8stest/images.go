package k8stest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

// File is one file of an image built by ImageTar.
type File struct {
	// Path is the absolute path in the image.
	Path string
	// Source is the file on this machine to copy; Data is used when empty.
	Source string
	Data   []byte
	Mode   int64
}

// ImageTar writes a single-layer image in the docker-archive format (what
// `ctr images import` and `docker load` read) to out: files, plus /tmp,
// with entrypoint and env. Everything is stamped at the epoch, so the same
// inputs give the same bytes.
func ImageTar(out, ref string, entrypoint, env []string, files []File) error {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{"tmp": true}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		for d := filepath.Dir(f.Path[1:]); d != "." && d != "/"; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl)
	for _, d := range dl {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, f := range files {
		data := f.Data
		if f.Source != "" {
			b, err := os.ReadFile(f.Source)
			if err != nil {
				return err
			}
			data = b
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Path[1:], Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	lsum := sha256.Sum256(layer.Bytes())
	lhex := hex.EncodeToString(lsum[:])
	if env == nil {
		env = []string{"PATH=/"}
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux", "created": "1970-01-01T00:00:00Z",
		"config":  map[string]any{"Entrypoint": entrypoint, "Env": env, "WorkingDir": "/"},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + lhex}},
		"history": []map[string]string{{"created": "1970-01-01T00:00:00Z", "created_by": "plumbline k8stest"}},
	})
	csum := sha256.Sum256(cfg)
	chex := hex.EncodeToString(csum[:])
	manifest, _ := json.Marshal([]map[string]any{{"Config": chex + ".json", "RepoTags": []string{ref}, "Layers": []string{lhex + "/layer.tar"}}})

	tmp := out + ".tmp" + strconv.Itoa(os.Getpid())
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	ow := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		data []byte
	}{{"manifest.json", manifest}, {chex + ".json", cfg}, {lhex + "/layer.tar", layer.Bytes()}} {
		if err := ow.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch}); err != nil {
			f.Close()
			return err
		}
		if _, err := ow.Write(e.data); err != nil {
			f.Close()
			return err
		}
	}
	if err := ow.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// cacheDir holds built test binaries and image tars, keyed by their
// sources and the Go version.
func cacheDir() string { return filepath.Join(os.TempDir(), "plumbline-k8stest") }

var buildMu sync.Mutex

// GoBinaryImage builds the Go program in srcDir (a main package; a
// go.mod-less folder is built as files) statically, and packs it as image
// ref with the binary at /<name> as its entrypoint. The tar is cached by
// the source's hash and the Go version.
func GoBinaryImage(ref, name, srcDir string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	h := sha256.New()
	ents, err := os.ReadDir(srcDir)
	if err != nil {
		return "", err
	}
	var srcs []string
	for _, e := range ents {
		if filepath.Ext(e.Name()) == ".go" {
			b, err := os.ReadFile(filepath.Join(srcDir, e.Name()))
			if err != nil {
				return "", err
			}
			h.Write([]byte(e.Name()))
			h.Write(b)
			srcs = append(srcs, e.Name())
		}
	}
	h.Write([]byte(runtime.Version() + ref))
	key := hex.EncodeToString(h.Sum(nil)[:8])
	out := filepath.Join(cacheDir(), name+"-"+key+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(cacheDir(), 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(cacheDir(), name+"-"+key+".bin")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", bin}, srcs...)...)
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", srcDir, err, b)
	}
	defer os.Remove(bin)
	if err := ImageTar(out, ref, []string{"/" + name}, nil, []File{{Path: "/" + name, Source: bin}}); err != nil {
		return "", err
	}
	return out, nil
}

// pauseImageTar is the pod sandbox image.
func pauseImageTar() (string, error) {
	_, self, _, _ := runtime.Caller(0)
	return GoBinaryImage(pauseImage, "pause", filepath.Join(filepath.Dir(self), "testdata", "pause"))
}

// PodmanImage saves an image of the podman store configured by
// scripts/install-containers.sh (the R + plumber base image, an image the
// seed's docker-context built) as a docker-archive tar, cached by the
// image's id, and returns its path. podmanEnv is that store's
// configuration (CONTAINERS_CONF…).
func PodmanImage(ref string, podmanEnv []string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	inspect := exec.Command("podman", "image", "inspect", "--format", "{{.Id}}", ref)
	inspect.Env = append(os.Environ(), podmanEnv...)
	idb, err := inspect.Output()
	if err != nil {
		return "", fmt.Errorf("podman image inspect %s: %w (build it: scripts/install-containers.sh)", ref, err)
	}
	id := string(bytes.TrimSpace(idb))
	if len(id) > 16 {
		id = id[:16]
	}
	if err := os.MkdirAll(cacheDir(), 0o755); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(ref))
	out := filepath.Join(cacheDir(), "podman-"+hex.EncodeToString(sum[:4])+"-"+id+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	tmp := out + ".tmp" + strconv.Itoa(os.Getpid())
	save := exec.Command("podman", "save", "--format", "docker-archive", "-o", tmp, ref)
	save.Env = append(os.Environ(), podmanEnv...)
	if b, err := save.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("podman save %s: %v: %s", ref, err, b)
	}
	return out, os.Rename(tmp, out)
}
