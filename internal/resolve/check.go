package resolve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/plumber"
	"github.com/plumbline/plumbline/internal/reason"
)

// Materializer gives read-only host folders for artifact digests.
type Materializer interface {
	Materialize(ctx context.Context, digest string) (string, error)
}

// RChecker checks an R plan before its first instance starts: Rscript must
// exist and every package the scoring script names must be installed.
// Packages the Dockerfile installs but the script never names are warnings.
type RChecker struct {
	// Rscript is the R front end ("" means Rscript on PATH).
	Rscript string
	// Artifacts materializes the build context to read its Dockerfile (nil:
	// the Dockerfile is not read).
	Artifacts Materializer
	// Sandbox, if set, is applied to every R process that reads the
	// deployment's model (it runs as the instances' user, as they do).
	Sandbox func(*exec.Cmd)
}

// Check implements the reconciler's pre-start check.
func (c *RChecker) Check(ctx context.Context, p *Plan, codeDir string) ([]string, error) {
	if p.Scorer != nil {
		if done, err := c.checkScorer(ctx, p, codeDir); done || err != nil {
			return nil, err
		}
	}
	if p.Runtime != driver.RuntimePlumber {
		return nil, nil
	}
	rscript := c.Rscript
	if rscript == "" {
		rscript = "Rscript"
	}
	if _, err := exec.LookPath(rscript); err != nil {
		return nil, reason.Terminal(reason.ResourceNotReady, "R is not installed (%s not found); install it with: apt-get install -y r-base-core r-cran-plumber (or start plumbline serve with --rscript PATH)", rscript)
	}
	// The model's crates are read in parallel with the package check: a
	// crate that will fail when called is a warning here (the sample
	// request, if any, is what keeps it from traffic).
	crates := make(chan []string, 1)
	go func() { crates <- c.CheckModel(ctx, p.ModelDigest) }()
	warnings, err := c.checkR(ctx, rscript, p, codeDir)
	warnings = append(warnings, <-crates...)
	if err != nil {
		return nil, err
	}
	return warnings, nil
}

// checkR checks R packages (and, for a no-code plan, the model's) and
// compares the Dockerfile with the script.
func (c *RChecker) checkR(ctx context.Context, rscript string, p *Plan, codeDir string) ([]string, error) {
	script := filepath.Join(codeDir, p.EntryScript)
	src, err := os.ReadFile(script)
	if err != nil {
		return nil, reason.Terminal(reason.BadArgument, "scoring script %s: %w", p.EntryScript, err)
	}
	used := plumber.ScriptPackages(src)
	need := append([]string{"plumber"}, used...)
	missing, err := plumber.MissingPackages(ctx, rscript, need)
	if err != nil {
		if errors.Is(err, plumber.ErrNoR) {
			return nil, reason.Terminal(reason.ResourceNotReady, "%v; install it with: apt-get install -y r-base-core r-cran-plumber", err)
		}
		return nil, reason.Transient(reason.ResourceNotReady, "checking R packages: %w", err)
	}
	if len(missing) > 0 {
		return nil, reason.Terminal(reason.ResourceNotReady, "R packages used by %s are not installed: %s; install them with: %s",
			p.EntryScript, strings.Join(missing, ", "), strings.ReplaceAll(plumber.InstallHint(missing), "\n", "; "))
	}
	if p.Scorer != nil {
		missing, err := c.scorerPackages(ctx, rscript, p, codeDir)
		if err != nil {
			return nil, fmt.Errorf("ResourceNotReady: %w", err)
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("ResourceNotReady: R packages the model %s:%s needs are not installed: %s; install them with: %s",
				p.ModelName, p.ModelVersion, strings.Join(missing, ", "), strings.ReplaceAll(plumber.InstallHint(missing), "\n", "; "))
		}
		return nil, nil
	}
	var warnings []string
	if c.Artifacts != nil && p.BuildDigest != "" && p.Dockerfile != "" {
		dir, err := c.Artifacts.Materialize(ctx, p.BuildDigest)
		if err == nil {
			if df, err := os.ReadFile(filepath.Join(dir, p.Dockerfile)); err == nil {
				extra := plumber.DockerfileExtras(df, src)
				if len(extra) > 0 {
					if missing, err := plumber.MissingPackages(ctx, rscript, extra); err == nil {
						extra = missing
					}
				}
				if len(extra) > 0 {
					warnings = append(warnings, fmt.Sprintf("the Dockerfile installs %s, which %s never names and this machine's R does not have; plumbline runs %s with this machine's R packages (a crate that needs them at run time will fail when it is called): %s",
						strings.Join(extra, ", "), p.EntryScript, p.EntryScript, strings.ReplaceAll(plumber.InstallHint(extra), "\n", "; ")))
				}
			}
		}
	}
	return warnings, nil
}

func readFile(dir, rel string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, rel)) }
