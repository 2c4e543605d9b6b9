package resolve

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/plumbline/plumbline/internal/contract"
	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/registry"
	"github.com/plumbline/plumbline/internal/scorer"
	"github.com/plumbline/plumbline/internal/spec"
	"github.com/plumbline/plumbline/internal/store"
)

// ScorerPlan says which built-in scorer serves a no-code deployment.
type ScorerPlan struct {
	// Format is a scorer.Format* value.
	Format string `json:"format"`
	// File is the model file relative to AZUREML_MODEL_DIR ("" for
	// python_function and triton).
	File string `json:"file,omitempty"`
	// Packages are the R packages the pin says the model needs.
	Packages []string `json:"packages,omitempty"`
	// Python is the interpreter of a python_function model.
	Python string `json:"python,omitempty"`
}

// Environment variables the R scorer reads (see internal/scorer/r/plumber.R).
const (
	envScorerFormat = "PLUMBLINE_SCORER_FORMAT"
	envModelFile    = "PLUMBLINE_MODEL_FILE"
	envModelMeta    = "PLUMBLINE_MODEL_META"
	envScorerPrint  = "PLUMBLINE_SCORER_PRINT"
)

// isBuiltin reports whether the deployment asks for the built-in scorer.
func isBuiltin(d *spec.Deployment) bool {
	return d.Plumbline != nil && strings.EqualFold(strings.TrimSpace(d.Plumbline.Scorer), spec.ScorerBuiltin)
}

// noCode resolves a deployment without environment: its model is served by
// a built-in scorer. m is the pinned model.
func (r *Resolver) noCode(ctx context.Context, dd *spec.Deployment, m store.ModelVersion, p *Plan) ([]string, error) {
	switch {
	case dd.CodeConfiguration != nil || dd.Model == nil:
		return nil, errorf("environment", "missing; set an environment: azureml:<name>:<version>, or inline with image and inference_config")
	case isBuiltin(dd), m.Type == spec.ModelTypeMLflow, m.Type == spec.ModelTypeTriton:
	default:
		return nil, errorf("environment", "missing; set an environment: azureml:<name>:<version>, or inline with image and inference_config (model %s:%s is a %s, which Azure serves only with an environment; to serve an MLflow model, a vetiver pin, an .rds or a crate.bin without one, set plumbline.scorer: builtin)",
			m.Name, m.Version, orCustom(m.Type))
	}
	dir, err := r.reg.Materialize(ctx, p.ModelDigest)
	if err != nil {
		return nil, fmt.Errorf("model %s:%s: %w", m.Name, m.Version, err)
	}
	mod, err := scorer.Detect(filepath.Join(dir, p.ModelPath), m.Type)
	if err != nil {
		return nil, errorf("model", "model %s:%s: %v", m.Name, m.Version, err)
	}
	var notices []string
	switch mod.Format {
	case scorer.FormatTriton:
		p.Runtime = driver.RuntimeImage
		p.Scorer = &ScorerPlan{Format: mod.Format}
		p.Liveness, p.Readiness, p.Scoring = Route{8000, "/v2/health/live"}, Route{8000, "/v2/health/ready"}, Route{8000, "/"}
		return nil, nil
	case scorer.FormatPython:
		python := r.Python
		if python == "" {
			python = "python3"
		}
		p.Runtime = driver.RuntimeGeneric
		p.Scorer = &ScorerPlan{Format: mod.Format, Python: python}
		p.Command = []string{python, "-m", "mlflow", "models", "serve", "-m", "{model_dir}/" + p.ModelPath,
			"--host", "127.0.0.1", "--port", "{port}", "--env-manager", "local"}
		p.Liveness, p.Readiness, p.Scoring = Route{5001, "/ping"}, Route{5001, "/ping"}, Route{5001, "/invocations"}
		notices = append(notices, "no-code deployment: "+mod.Why+"; served by MLflow's scoring server with "+python+" (POST /score goes to /invocations)")
		return notices, nil
	}
	code, err := r.scorerCode(ctx)
	if err != nil {
		return nil, err
	}
	file := path.Join(p.ModelPath, mod.File)
	meta := mod.Meta
	if meta == nil {
		meta = map[string]any{}
	}
	if _, ok := meta["version"]; !ok {
		meta["version"] = m.Version
	}
	if mod.Packages != nil {
		meta["required_pkgs"] = mod.Packages
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	p.Runtime = driver.RuntimePlumber
	p.CodeDigest, p.CodeRoot, p.EntryScript = code, scorer.Dir, scorer.Script
	p.OpenAPIPath = "/openapi.json"
	p.Scorer = &ScorerPlan{Format: mod.Format, File: file, Packages: mod.Packages}
	p.Liveness, p.Readiness, p.Scoring = Route{8000, "/ping"}, Route{8000, "/ping"}, Route{8000, "/score"}
	env := map[string]string{envScorerFormat: mod.Format, envModelFile: file, envModelMeta: string(mj)}
	for k, v := range p.Env {
		env[k] = v
	}
	p.Env = env
	notices = append(notices, "no-code deployment: "+mod.Why+"; served by plumbline's built-in R scorer (POST /score and /predict, GET /ping, /metadata, /prototype)")
	return notices, nil
}

func orCustom(t string) string {
	if t == "" {
		return spec.ModelTypeCustom
	}
	return t
}

// scorerCode registers the R scorer as a code snapshot (content-addressed:
// the same for every deployment of this plumbline version) and returns its
// digest.
func (r *Resolver) scorerCode(ctx context.Context) (string, error) {
	r.scorerOnce.Lock()
	defer r.scorerOnce.Unlock()
	if r.scorerDigest != "" && r.reg.Has(ctx, r.scorerDigest) {
		return r.scorerDigest, nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: scorer.Dir + "/", Mode: 0o755, ModTime: epoch}); err != nil {
		return "", err
	}
	for name, b := range scorer.RCode() {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: scorer.Dir + "/" + name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return "", err
		}
		if _, err := tw.Write(b); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	a, err := r.reg.Ingest(ctx, &buf, registry.Limits{})
	if err != nil {
		return "", fmt.Errorf("register the built-in scorer: %w", err)
	}
	r.scorerDigest = a.Digest
	return a.Digest, nil
}

// contractFor chooses the deployment's input contract: the deployment's
// plumbline.input, else the model version's prototype, else a vetiver pin's
// prototype (read with R). A nil contract means requests are not checked.
func (r *Resolver) contractFor(ctx context.Context, dd *spec.Deployment, m store.ModelVersion, p *Plan) (*contract.Contract, []string, error) {
	if x := dd.Plumbline; x != nil && x.Input != nil {
		in := x.Input
		c := &contract.Contract{ExtraColumns: strings.ToLower(in.ExtraColumns), AllNAColumns: strings.ToLower(in.AllNAColumns), Source: "deployment plumbline.input"}
		if in.Prototype != nil {
			cols, err := contract.PrototypeFromMap(in.Prototype)
			if err != nil {
				return nil, nil, errorf("plumbline.input.prototype", "%v", err)
			}
			c.Columns = cols
		} else {
			b, err := json.Marshal(in.JSONSchema)
			if err != nil {
				return nil, nil, errorf("plumbline.input.json_schema", "%v", err)
			}
			c.JSONSchema = b
		}
		if err := c.Validate(); err != nil {
			return nil, nil, errorf("plumbline.input", "%v", err)
		}
		return c, nil, nil
	}
	if len(m.Contract) > 0 {
		var c contract.Contract
		if err := json.Unmarshal(m.Contract, &c); err == nil && c.Validate() == nil {
			return &c, nil, nil
		}
	}
	if p.Scorer != nil && p.Scorer.Format == scorer.FormatVetiver {
		cols, err := r.pinPrototype(ctx, p)
		if err != nil {
			return nil, []string{"the pin's prototype could not be read on this server (" + err.Error() + "); requests are checked by the scorer in R only"}, nil
		}
		if cols == nil {
			return nil, nil, nil
		}
		return &contract.Contract{Columns: cols, Source: "vetiver pin " + m.Name + ":" + m.Version}, nil, nil
	}
	return nil, nil, nil
}

// pinPrototype runs the R scorer in print mode to read a pin's prototype;
// results are cached by model digest.
func (r *Resolver) pinPrototype(ctx context.Context, p *Plan) ([]contract.Column, error) {
	key := p.ModelDigest + "/" + p.Scorer.File
	if v, ok := r.prototypes.Load(key); ok {
		return v.([]contract.Column), nil
	}
	rscript := r.Rscript
	if rscript == "" {
		rscript = "Rscript"
	}
	if _, err := exec.LookPath(rscript); err != nil {
		return nil, fmt.Errorf("%s not found", rscript)
	}
	modelDir, err := r.reg.Materialize(ctx, p.ModelDigest)
	if err != nil {
		return nil, err
	}
	codeDir, err := r.reg.Materialize(ctx, p.CodeDigest)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rscript, "--vanilla", filepath.Join(codeDir, p.CodeRoot, p.EntryScript))
	cmd.Env = append(os.Environ(), "AZUREML_MODEL_DIR="+modelDir, envScorerFormat+"="+p.Scorer.Format,
		envModelFile+"="+p.Scorer.File, envScorerPrint+"=prototype")
	if r.Sandbox != nil {
		r.Sandbox(cmd) // reading a model can run code (an .rds can hold a promise)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("R: %v: %s", err, lastLine(stderr.String()))
	}
	var cols []contract.Column
	if len(bytes.TrimSpace(out)) > 0 {
		cols, err = contract.ParsePrototype(out)
		if err != nil {
			return nil, err
		}
	}
	r.prototypes.Store(key, cols)
	return cols, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

var _ sync.Locker = (*sync.Mutex)(nil)
