// Package scorer is plumbline's built-in scoring servers for models that
// come without a scoring script (no-code deployments): an MLflow model (the
// R crate flavour natively, python_function through the host's Python), a
// vetiver pin in a pins board folder, a bare .rds of a fitted model, or the
// seed's crate.bin.
//
// Detect reads a model folder and says what it holds; the R scorer itself is
// a plumber file (r/plumber.R) that plumbline registers as the deployment's
// code, so it runs on whichever R runtime the deployment uses.
//
// This package imports spec only (for model types).
package scorer

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/plumbline/plumbline/internal/spec"
)

// Formats.
const (
	FormatCrate   = "crate"         // R: a function in crate.bin (MLflow's crate flavour, or the seed's)
	FormatVetiver = "vetiver"       // R: a pins board version of a vetiver_model (or any pinned model)
	FormatRDS     = "rds"           // R: a fitted model with a predict() method
	FormatPython  = "mlflow-python" // MLflow's python_function flavour
	FormatTriton  = "triton"        // a Triton model repository: needs a Triton image
)

//go:embed r/plumber.R
var rFiles embed.FS

// Dir is the folder name of the R scorer's code snapshot; Script its entry.
const (
	Dir    = "plumbline-scorer"
	Script = "plumber.R"
)

// RCode is the R scorer: file name → content, for registering it as a code
// snapshot.
func RCode() map[string][]byte {
	b, err := rFiles.ReadFile("r/plumber.R")
	if err != nil {
		panic(err) // embedded at build time
	}
	return map[string][]byte{Script: b}
}

// Model is what a model folder holds, as the built-in scorer serves it.
type Model struct {
	// Format is one of the Format* constants.
	Format string
	// File is the model file, relative to the model's root (the registered
	// path's basename): "crate.bin", "iris-rf/20240101T000000Z-ab12c/iris-rf.rds".
	File string
	// Packages are the R packages a pin says the model needs
	// (required_pkgs); more may come from the model's class at check time.
	Packages []string
	// Meta is vetiver's metadata for /metadata: user, version, url,
	// description, required_pkgs.
	Meta map[string]any
	// Why says how the format was recognised, for the deployment's events.
	Why string
}

// ErrNotServable means the folder holds nothing the built-in scorer serves.
var ErrNotServable = errors.New("no model the built-in scorer can serve")

// Detect reads the model at root (a folder or a single file, the registered
// path) whose registered type is modelType.
func Detect(root, modelType string) (*Model, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(root)
	if !st.IsDir() {
		if strings.EqualFold(path.Ext(base), ".rds") {
			return &Model{Format: FormatRDS, File: "", Why: base + " is an .rds file"}, nil
		}
		if base == "crate.bin" {
			return &Model{Format: FormatCrate, File: "", Why: "crate.bin is a crate"}, nil
		}
		return nil, fmt.Errorf("%w: %s is a single file that is neither an .rds nor a crate.bin", ErrNotServable, base)
	}
	if modelType == spec.ModelTypeTriton {
		return &Model{Format: FormatTriton, Why: "the model's type is triton_model"}, nil
	}
	if b, err := os.ReadFile(filepath.Join(root, "MLmodel")); err == nil {
		return mlflowModel(b)
	}
	if modelType == spec.ModelTypeMLflow {
		return nil, fmt.Errorf("%w: the model's type is mlflow_model but %s has no MLmodel file (it holds: %s)", ErrNotServable, base, listing(root))
	}
	if m, err := pin(root); m != nil || err != nil {
		return m, err
	}
	if _, err := os.Stat(filepath.Join(root, "crate.bin")); err == nil {
		return &Model{Format: FormatCrate, File: "crate.bin", Why: "the folder holds a crate.bin"}, nil
	}
	var rds []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".rds") {
			rel, _ := filepath.Rel(root, p)
			rds = append(rds, filepath.ToSlash(rel))
		}
		return nil
	})
	switch len(rds) {
	case 1:
		return &Model{Format: FormatRDS, File: rds[0], Why: rds[0] + " is an .rds file"}, nil
	case 0:
		return nil, fmt.Errorf("%w: %s holds no MLmodel, pins data.txt, crate.bin or .rds file (it holds: %s)", ErrNotServable, base, listing(root))
	}
	sort.Strings(rds)
	return nil, fmt.Errorf("%w: %s holds several .rds files (%s); register the one to serve, or write a scoring script that picks one", ErrNotServable, base, strings.Join(rds, ", "))
}

// mlmodel is the part of MLflow's MLmodel file plumbline reads.
type mlmodel struct {
	Flavors map[string]map[string]any `yaml:"flavors"`
	RunID   string                    `yaml:"run_id"`
}

func mlflowModel(b []byte) (*Model, error) {
	var m mlmodel
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("MLmodel is not YAML: %w", err)
	}
	if c, ok := m.Flavors["crate"]; ok {
		file, _ := c["model"].(string)
		if file == "" {
			file = "crate.bin"
		}
		if !fs.ValidPath(file) {
			return nil, fmt.Errorf("MLmodel: flavors.crate.model %q is not a path inside the model", file)
		}
		return &Model{Format: FormatCrate, File: file, Why: "MLmodel has the crate flavour (MLflow's R models)",
			Meta: map[string]any{"run_id": m.RunID}}, nil
	}
	if _, ok := m.Flavors["python_function"]; ok {
		return &Model{Format: FormatPython, Why: "MLmodel has the python_function flavour"}, nil
	}
	var names []string
	for k := range m.Flavors {
		names = append(names, k)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("%w: MLmodel flavours %s; plumbline serves crate (R) and python_function", ErrNotServable, strings.Join(names, ", "))
}

// pinMeta is a pins data.txt (api_version 1).
type pinMeta struct {
	File        any            `yaml:"file"`
	Type        string         `yaml:"type"`
	Title       string         `yaml:"title"`
	Description string         `yaml:"description"`
	Created     string         `yaml:"created"`
	PinHash     string         `yaml:"pin_hash"`
	APIVersion  any            `yaml:"api_version"`
	User        map[string]any `yaml:"user"`
}

// pin finds a pins board version under root: root itself (a version
// folder), root/<version> (a pin: the newest version), or
// root/<pin>/<version> (a board with one pin: its newest version).
func pin(root string) (*Model, error) {
	for _, depth := range []int{0, 1, 2} {
		dirs := []string{"."}
		for range depth {
			var next []string
			for _, d := range dirs {
				entries, _ := os.ReadDir(filepath.Join(root, d))
				for _, e := range entries {
					if e.IsDir() {
						next = append(next, path.Join(d, e.Name()))
					}
				}
			}
			dirs = next
		}
		var found []string
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(root, d, "data.txt")); err == nil {
				found = append(found, d)
			}
		}
		if len(found) == 0 {
			continue
		}
		if depth == 2 {
			pins := map[string]bool{}
			for _, f := range found {
				pins[strings.SplitN(f, "/", 2)[0]] = true
			}
			if len(pins) > 1 {
				var names []string
				for p := range pins {
					names = append(names, p)
				}
				sort.Strings(names)
				return nil, fmt.Errorf("%w: the board holds several pins (%s); register one pin's folder", ErrNotServable, strings.Join(names, ", "))
			}
		}
		// pins names versions <created>-<hash>: the last in order is the newest.
		sort.Strings(found)
		return readPin(root, found[len(found)-1])
	}
	return nil, nil
}

func readPin(root, dir string) (*Model, error) {
	b, err := os.ReadFile(filepath.Join(root, dir, "data.txt"))
	if err != nil {
		return nil, err
	}
	var m pinMeta
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s/data.txt is not YAML: %w", dir, err)
	}
	file, _ := m.File.(string)
	if list, ok := m.File.([]any); ok && len(list) == 1 {
		file, _ = list[0].(string)
	}
	if m.Type != "rds" || file == "" {
		return nil, fmt.Errorf("%w: the pin in %s has type %q (file %v); the built-in scorer serves rds pins (vetiver_pin_write writes them)", ErrNotServable, dir, m.Type, m.File)
	}
	rel := path.Join(dir, file)
	if !fs.ValidPath(rel) {
		return nil, fmt.Errorf("%s/data.txt: file %q is not inside the pin", dir, file)
	}
	if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
		return nil, fmt.Errorf("%s/data.txt names %s, which is not there", dir, file)
	}
	mod := &Model{Format: FormatVetiver, File: rel, Why: "a pins board version (" + rel + ", data.txt)", Meta: map[string]any{
		"user": map[string]any{}, "version": path.Base(dir), "url": nil, "description": m.Description,
	}}
	user := map[string]any{}
	for k, v := range m.User {
		switch k {
		case "required_pkgs":
			switch x := v.(type) {
			case string:
				mod.Packages = append(mod.Packages, x)
			case []any:
				for _, p := range x {
					if s, ok := p.(string); ok {
						mod.Packages = append(mod.Packages, s)
					}
				}
			}
		case "renv_lock":
		default:
			user[k] = v
		}
	}
	mod.Meta["user"] = user
	mod.Meta["required_pkgs"] = mod.Packages
	return mod, nil
}

func listing(root string) string {
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) == 0 {
		return "nothing"
	}
	var names []string
	for i, e := range entries {
		if i == 8 {
			names = append(names, "…")
			break
		}
		names = append(names, e.Name())
	}
	return strings.Join(names, ", ")
}
