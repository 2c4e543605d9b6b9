package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/plumbline/plumbline/internal/contract"
	"github.com/plumbline/plumbline/internal/spec"
)

// bareModel reports whether target is a model plumbline can serve without
// any YAML: an .rds or crate.bin file, or a folder (without endpoint.yml)
// holding an MLmodel, a pins data.txt, a crate.bin or an .rds.
func bareModel(target string) (string, bool) {
	fi, err := os.Stat(target)
	if err != nil {
		return "", false
	}
	if !fi.IsDir() {
		name := strings.ToLower(filepath.Base(target))
		if strings.HasSuffix(name, ".rds") || name == "crate.bin" {
			return spec.ModelTypeCustom, true
		}
		return "", false
	}
	if _, err := os.Stat(filepath.Join(target, "endpoint.yml")); err == nil {
		return "", false
	}
	if _, err := os.Stat(filepath.Join(target, "MLmodel")); err == nil {
		return spec.ModelTypeMLflow, true
	}
	found := false
	_ = filepath.WalkDir(target, func(p string, d os.DirEntry, err error) error {
		if err != nil || found {
			return filepath.SkipDir
		}
		n := strings.ToLower(d.Name())
		if !d.IsDir() && (n == "data.txt" || n == "crate.bin" || strings.HasSuffix(n, ".rds")) {
			found = true
		}
		return nil
	})
	return spec.ModelTypeCustom, found
}

var notNameChars = regexp.MustCompile(`[^a-z0-9-]+`)

// modelEndpointName makes an endpoint name (3–32 characters, a letter
// first) from a model path: ./models/iris-rf.rds → iris-rf.
func modelEndpointName(target string) string {
	base := strings.ToLower(filepath.Base(filepath.Clean(target)))
	for _, ext := range []string{".rds", ".bin"} {
		base = strings.TrimSuffix(base, ext)
	}
	if base == "crate" || base == "model" || base == "models" || base == "." {
		if parent := strings.ToLower(filepath.Base(filepath.Dir(absPath(target)))); parent != "" && parent != "/" {
			base = parent + "-" + base
		}
	}
	n := strings.Trim(notNameChars.ReplaceAllString(base, "-"), "-")
	if n == "" || n[0] < 'a' || n[0] > 'z' {
		n = "model-" + n
	}
	if len(n) < 3 {
		n += "-endpoint"
	}
	if len(n) > 32 {
		n = strings.TrimRight(n[:32], "-")
	}
	return n
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// bareModelPlan is up's plan for a model with no YAML: an endpoint named
// after the model (key auth) and one deployment, blue, served by the
// built-in scorer. With inferPrototype, sample_request.json next to the
// model becomes the input contract.
func bareModelPlan(target, modelType string, inferPrototype bool, sets []string) (*upPlan, error) {
	name := modelEndpointName(target)
	dir := target
	if fi, err := os.Stat(target); err == nil && !fi.IsDir() {
		dir = filepath.Dir(target)
	}
	ep := &spec.Endpoint{Name: name, AuthMode: "key"}
	count := 1
	d := &spec.Deployment{
		Name:          "blue",
		EndpointName:  name,
		Model:         &spec.ModelRef{Kind: spec.RefInline, Inline: &spec.Model{Name: name, Path: absPath(target), Type: modelType}},
		InstanceType:  "Standard_DS2_v2",
		InstanceCount: &count,
		Plumbline:     &spec.DeploymentExtension{Scorer: spec.ScorerBuiltin},
	}
	if inferPrototype {
		sample := filepath.Join(dir, "sample_request.json")
		b, err := os.ReadFile(sample)
		if err != nil {
			return nil, fmt.Errorf("--infer-prototype: %w", err)
		}
		cols, err := contract.Infer(b)
		if err != nil {
			return nil, fmt.Errorf("--infer-prototype from %s: %w", sample, err)
		}
		proto := make(map[string]any, len(cols))
		for _, c := range cols {
			proto[c.Name] = c.Type
		}
		d.Plumbline.Input = &spec.InputContract{Prototype: proto}
	}
	if len(sets) > 0 {
		return nil, usageErrorf("--set applies to YAML files; a bare model has none (write endpoint.yml and deployment.yml, or use plumbline init)")
	}
	if err := ep.Validate(); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &upPlan{endpoint: ep, deployments: []*spec.Document{{File: target, Kind: spec.KindDeployment, Deployment: d}}, dir: dir}, nil
}
