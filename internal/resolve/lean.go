package resolve

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/plumbline/plumbline/internal/plumber"
	"github.com/plumbline/plumbline/internal/spec"
)

// rRuntime chooses how an R plumber deployment's R runs, and says why (a
// notice, which becomes the deployment's event): plumbline.r_runtime when
// the deployment sets it; else the lean runtime, unless the scoring script
// uses something only plumber's own server serves (plumber.LeanBlockers).
func (r *Resolver) rRuntime(ctx context.Context, d *spec.Deployment, p *Plan) (string, string, error) {
	forced := ""
	if x := d.Plumbline; x != nil {
		forced = strings.ToLower(x.RRuntime)
	}
	if forced == spec.RRuntimePlumber {
		return spec.RRuntimePlumber, "R runtime: plumber's own server, as plumbline.r_runtime says", nil
	}
	var blockers []plumber.LeanBlocker
	if p.CodeDigest != "" {
		dir, err := r.reg.Materialize(ctx, p.CodeDigest)
		if err != nil {
			return "", "", fmt.Errorf("code_configuration.code: %w", err)
		}
		src, err := readFile(dir, path.Join(p.CodeRoot, p.EntryScript))
		if err != nil {
			return "", "", fmt.Errorf("code_configuration.scoring_script: %w", err)
		}
		blockers = plumber.LeanBlockers(src)
	}
	var list []string
	for _, b := range blockers {
		list = append(list, p.EntryScript+" "+b.String())
	}
	switch {
	case forced == spec.RRuntimeLean && len(blockers) > 0:
		return spec.RRuntimeLean, "R runtime: lean, as plumbline.r_runtime says, although " + strings.Join(list, "; ") +
			"; remove plumbline.r_runtime to let plumbline serve it with plumber's own server", nil
	case forced == spec.RRuntimeLean:
		return spec.RRuntimeLean, "R runtime: lean (plumbline's R workers), as plumbline.r_runtime says: " + p.EntryScript +
			" is loaded once and its workers are forked from the loaded session", nil
	case len(blockers) > 0:
		return spec.RRuntimePlumber, "R runtime: plumber's own server, because " + strings.Join(list, "; ") +
			", which the lean runtime cannot serve", nil
	}
	return spec.RRuntimeLean, "R runtime: lean (plumbline's R workers): " + p.EntryScript +
		" is loaded once and its workers are forked from the loaded session; set plumbline.r_runtime: plumber in the deployment to use plumber's own server", nil
}

// leanSettings fills the lean runtime's settings from the deployment's
// plumbline block and request settings, and returns notices about them.
func leanSettings(d *spec.Deployment, p *Plan) []string {
	var notices []string
	x := d.Plumbline
	if x == nil {
		x = &spec.DeploymentExtension{}
	}
	switch {
	case x.Workers != nil:
		p.Workers = *x.Workers
		if p.Workers != p.MaxConcurrentPerInstance {
			notices = append(notices, fmt.Sprintf("plumbline.workers is %d and max_concurrent_requests_per_instance %d: an instance runs %d requests at once",
				p.Workers, p.MaxConcurrentPerInstance, min(p.Workers, p.MaxConcurrentPerInstance)))
		}
	case p.MaxConcurrentPerInstance > spec.DefaultRWorkersCap:
		p.Workers = spec.DefaultRWorkersCap
		notices = append(notices, fmt.Sprintf("max_concurrent_requests_per_instance is %d: the lean R runtime runs %d R workers per instance (set plumbline.workers to change it); the other requests wait for a free worker",
			p.MaxConcurrentPerInstance, spec.DefaultRWorkersCap))
	default:
		p.Workers = p.MaxConcurrentPerInstance
	}
	if x.MaxRequestsPerWorker != nil {
		p.MaxRequestsPerWorker = *x.MaxRequestsPerWorker
	}
	if x.MaxWorkerMemory != "" {
		if m, err := spec.ParseMemory(x.MaxWorkerMemory); err == nil {
			p.MaxWorkerMemoryBytes = m
		}
	}
	return notices
}
