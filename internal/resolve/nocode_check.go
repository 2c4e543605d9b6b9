package resolve

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/plumbline/plumbline/internal/plumber"
	"github.com/plumbline/plumbline/internal/scorer"
)

// checkScorer is the pre-start check of a no-code deployment's built-in
// scorer. done is false when the ordinary R check should run too.
func (c *RChecker) checkScorer(ctx context.Context, p *Plan, codeDir string) (done bool, _ error) {
	switch p.Scorer.Format {
	case scorer.FormatTriton:
		return true, fmt.Errorf("ResourceNotReady: model %s:%s is a triton_model; plumbline has no built-in Triton server: run it with the container driver and a Triton Inference Server image, i.e. give the deployment environment.image (for example nvcr.io/nvidia/tritonserver:24.08-py3) with inference_config routes /v2/health/live, /v2/health/ready and /",
			p.ModelName, p.ModelVersion)
	case scorer.FormatPython:
		python := p.Scorer.Python
		if python == "" {
			python = "python3"
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, python, "-c", "import mlflow").CombinedOutput()
		if err != nil {
			return true, fmt.Errorf("ResourceNotReady: model %s:%s is an MLflow model with only the python_function flavour, and %s cannot import mlflow (%s): install it for that interpreter (pip install mlflow, plus the packages in the model's requirements.txt or conda.yaml), or start plumbline serve with --python pointing at an interpreter that has it",
				p.ModelName, p.ModelVersion, python, why(out, err))
		}
		return true, nil
	}
	return false, nil
}

// scorerPackages asks the R scorer which packages the model needs (the
// pin's required_pkgs, the model class's package) and returns those not
// installed.
func (c *RChecker) scorerPackages(ctx context.Context, rscript string, p *Plan, codeDir string) ([]string, error) {
	if p.Scorer.Format == scorer.FormatCrate || c.Artifacts == nil || p.ModelDigest == "" {
		return nil, nil
	}
	modelDir, err := c.Artifacts.Materialize(ctx, p.ModelDigest)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rscript, "--vanilla", filepath.Join(codeDir, p.EntryScript))
	cmd.Env = append(os.Environ(), "AZUREML_MODEL_DIR="+modelDir, envScorerPrint+"=packages")
	for k, v := range p.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if c.Sandbox != nil {
		c.Sandbox(cmd) // reading a model can run code (an .rds can hold a promise)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("reading the model %s with R: %v: %s", p.Scorer.File, err, lastLine(stderr.String()))
	}
	var need []string
	for _, l := range strings.Fields(string(out)) {
		if plumber.ValidPackageName(l) {
			need = append(need, l)
		}
	}
	if len(need) == 0 {
		return nil, nil
	}
	return plumber.MissingPackages(ctx, rscript, need)
}

// why is a failed command's last line of output, or its error.
func why(out []byte, err error) string {
	if l := lastLine(string(out)); l != "" {
		return l
	}
	return err.Error()
}
