package reconcile

import (
	"time"

	"github.com/plumbline/plumbline/internal/driver"
	"github.com/plumbline/plumbline/internal/resolve"
)

// DeploymentSpec is what a driver.DeploymentDriver (Kubernetes) is given
// for plan: the replicas' template with artifact references (digests)
// where the instance drivers get host folders, instance_count, Azure's
// probes on the inference_config routes, limits and requests, and a
// termination grace that lets a replica finish its longest request.
func DeploymentSpec(p *resolve.Plan) driver.DeploymentSpec {
	s := driver.DeploymentSpec{
		Endpoint:   p.Endpoint,
		Deployment: p.Deployment,
		Template: driver.InstanceSpec{
			Endpoint:       p.Endpoint,
			Deployment:     p.Deployment,
			Template:       p.TemplateHash(),
			Runtime:        p.Runtime,
			EntryScript:    p.EntryScript,
			Command:        p.Command,
			Image:          p.Image,
			Port:           p.Scoring.Port,
			Env:            p.Env,
			CPU:            p.CPU,
			MemoryBytes:    p.MemoryBytes,
			ModelName:      p.ModelName,
			ModelVersion:   p.ModelVersion,
			ModelMountPath: p.ModelMountPath,
		},
		Replicas:           p.InstanceCount,
		Liveness:           platformProbe(p.Liveness, p.LivenessProbe),
		Readiness:          platformProbe(p.Readiness, p.ReadinessProbe),
		RequestCPU:         p.RequestCPU,
		RequestMemoryBytes: p.RequestMemoryBytes,
		TerminationGrace:   p.RequestTimeout + 5*time.Second,
	}
	if p.ModelDigest != "" {
		s.Model = &driver.Artifact{Digest: p.ModelDigest, Path: p.ModelPath}
	}
	if p.CodeDigest != "" {
		s.Code = &driver.Artifact{Digest: p.CodeDigest, Path: p.CodeRoot}
	}
	return s
}

func platformProbe(r resolve.Route, p resolve.Probe) driver.Probe {
	return driver.Probe{
		Path: r.Path, Port: r.Port,
		InitialDelay: p.InitialDelay, Period: p.Period, Timeout: p.Timeout,
		SuccessThreshold: p.SuccessThreshold, FailureThreshold: p.FailureThreshold,
	}
}
