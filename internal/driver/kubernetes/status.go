package kubernetes

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/plumbline/plumbline/internal/driver"
)

// Azure's reason codes for Kubernetes online deployments.
const (
	ReasonImagePull     = "ImagePullLoopBackOff"
	ReasonCrashLoop     = "KubernetesCrashLoopBackOff"
	ReasonOutOfMemory   = "PodOutOfMemory"
	ReasonUnschedulable = "PodUnschedulable"
	ReasonNotReady      = "ResourceNotReady"
	// ReasonFetch: the storage initializer could not fetch the model or
	// the code (Azure's ModelDownload sub-state).
	ReasonFetch = "ModelDownloadFailure"
)

// logLines is how many of a crashed container's last lines a reason quotes.
const logLines = 10

// ObserveDeployment implements driver.DeploymentDriver.
func (d *Driver) ObserveDeployment(ctx context.Context, endpoint, deployment string) (driver.DeploymentStatus, error) {
	name := ObjectName(endpoint, deployment)
	dep, err := d.client.AppsV1().Deployments(d.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && !d.owned(dep)) {
		return driver.DeploymentStatus{}, fmt.Errorf("deployment %s/%s: %w", endpoint, deployment, driver.ErrNotFound)
	}
	if err != nil {
		return driver.DeploymentStatus{}, fmt.Errorf("deployment %s/%s: %w", endpoint, deployment, err)
	}
	sel := labels.SelectorFromSet(d.selector(endpoint, deployment))
	pods, err := d.client.CoreV1().Pods(d.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return driver.DeploymentStatus{}, fmt.Errorf("deployment %s/%s: list pods: %w", endpoint, deployment, err)
	}
	listed, err := d.listedReady(ctx, name)
	if err != nil {
		return driver.DeploymentStatus{}, fmt.Errorf("deployment %s/%s: %w", endpoint, deployment, err)
	}
	return d.observe(ctx, dep, pods.Items, listed), nil
}

// listedReady returns the pods the EndpointSlices of Service name list as
// ready: what the gateways route to. A pod is a ready instance only once
// it is listed there, so a deployment is Available (Succeeded) only when
// the gateways can see its pods, not a moment before.
func (d *Driver) listedReady(ctx context.Context, name string) (map[string]bool, error) {
	slices, err := d.client.DiscoveryV1().EndpointSlices(d.cfg.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + name,
	})
	if err != nil {
		return nil, fmt.Errorf("list EndpointSlices: %w", err)
	}
	listed := map[string]bool{}
	for _, sl := range slices.Items {
		for _, e := range sl.Endpoints {
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" && e.Conditions.Ready != nil && *e.Conditions.Ready {
				listed[e.TargetRef.Name] = true
			}
		}
	}
	return listed, nil
}

// observe derives the deployment's state from its Deployment, its pods and
// the pods its EndpointSlices list as ready.
func (d *Driver) observe(ctx context.Context, dep *appsv1.Deployment, pods []corev1.Pod, listed map[string]bool) driver.DeploymentStatus {
	tmpl := dep.Spec.Template.Annotations[AnnotationTemplate]
	st := driver.DeploymentStatus{Template: tmpl, State: driver.DeploymentProgressing}
	if dep.Spec.Replicas != nil {
		st.Replicas = int(*dep.Spec.Replicas)
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	var current []*corev1.Pod
	for i := range pods {
		p := &pods[i]
		in := instanceStatus(p)
		if in.Ready && !listed[p.Name] {
			in.Ready = false
			in.Message = "ready; not yet listed in its EndpointSlice, which the gateways route from"
		}
		st.Instances = append(st.Instances, in)
		if in.Template == tmpl && p.DeletionTimestamp == nil {
			current = append(current, p)
			st.Updated++
			if in.Ready {
				st.Ready++
			}
		}
	}
	// A problem with a pod of the current template is the deployment's.
	for _, p := range current {
		if reason, msg := d.podProblem(ctx, p); reason != "" {
			st.State, st.Reason, st.Message = driver.DeploymentFailed, reason, msg
			return st
		}
	}
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			st.State, st.Reason = driver.DeploymentFailed, ReasonNotReady
			st.Message = fmt.Sprintf("the pods of %s did not become ready within %ds (progressDeadlineSeconds): %s", dep.Name, ptrVal(dep.Spec.ProgressDeadlineSeconds), c.Message)
			return st
		}
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			st.State, st.Reason = driver.DeploymentFailed, ReasonNotReady
			st.Message = fmt.Sprintf("Kubernetes cannot create the pods of %s: %s", dep.Name, c.Message)
			return st
		}
	}
	if dep.Status.ObservedGeneration >= dep.Generation && st.Updated == st.Replicas && st.Ready == st.Replicas &&
		int(dep.Status.UpdatedReplicas) == st.Replicas {
		st.State = driver.DeploymentAvailable
	}
	return st
}

func ptrVal(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// podProblem says why a pod of the current template cannot serve, in
// Azure's words with what to do, or "" when nothing is wrong (yet).
func (d *Driver) podProblem(ctx context.Context, p *corev1.Pod) (reason, message string) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return ReasonUnschedulable, fmt.Sprintf("pod %s cannot be scheduled: %s; lower resources.requests (or the instance_type), or add capacity to the cluster", p.Name, c.Message)
		}
	}
	for _, cs := range p.Status.InitContainerStatuses {
		if cs.Name != InitContainer {
			continue
		}
		if w := cs.State.Waiting; w != nil && isPullFailure(w.Reason) {
			return ReasonImagePull, pullMessage(p, cs.Image, w.Message)
		}
		if cs.RestartCount > 0 || (cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0) {
			return ReasonFetch, fmt.Sprintf("the storage initializer of pod %s (plumbline fetch) failed%s; see: plumbline online-deployment get-logs --container storage-initializer",
				p.Name, d.lastLines(ctx, p, InitContainer, &cs))
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != ServingContainer {
			continue
		}
		if w := cs.State.Waiting; w != nil {
			switch {
			case isPullFailure(w.Reason):
				return ReasonImagePull, pullMessage(p, cs.Image, w.Message)
			case w.Reason == "CreateContainerConfigError" || w.Reason == "CreateContainerError" || w.Reason == "RunContainerError":
				return ReasonNotReady, fmt.Sprintf("container %s of pod %s cannot start: %s: %s", ServingContainer, p.Name, w.Reason, w.Message)
			}
		}
		last := cs.LastTerminationState.Terminated
		if t := cs.State.Terminated; t != nil {
			last = t
		}
		if last != nil && last.Reason == "OOMKilled" {
			return ReasonOutOfMemory, fmt.Sprintf("container %s of pod %s was killed: out of memory (its memory limit is %s); raise resources.limits.memory or choose a bigger instance_type",
				ServingContainer, p.Name, memLimit(p))
		}
		if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
			code := ""
			if last != nil {
				code = fmt.Sprintf(" with code %d", last.ExitCode)
			}
			return ReasonCrashLoop, fmt.Sprintf("container %s of pod %s keeps exiting%s (%d restarts)%s",
				ServingContainer, p.Name, code, cs.RestartCount, d.lastLines(ctx, p, ServingContainer, &cs))
		}
	}
	return "", ""
}

func isPullFailure(reason string) bool {
	switch reason {
	case "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull":
		return true
	}
	return false
}

func pullMessage(p *corev1.Pod, image, kubelet string) string {
	return fmt.Sprintf("image %s not found in any reachable registry (pod %s: %s); push it to a registry the cluster can pull from, or load it on the nodes, and check environment.image", image, p.Name, kubelet)
}

func memLimit(p *corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if c.Name == ServingContainer {
			if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
				return q.String()
			}
		}
	}
	return "not set"
}

// lastLines quotes a container's last log lines (of its previous run when
// it restarted), as "; last log lines: …", or "".
func (d *Driver) lastLines(ctx context.Context, p *corev1.Pod, container string, cs *corev1.ContainerStatus) string {
	lo := &corev1.PodLogOptions{Container: container, TailLines: ptr(int64(logLines)), Previous: cs.RestartCount > 0 && cs.State.Terminated == nil}
	r, err := d.client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, lo).Stream(ctx)
	if err != nil {
		// The termination message (FallbackToLogsOnError) holds the tail.
		if t := cs.LastTerminationState.Terminated; t != nil && t.Message != "" {
			return "; last log lines: " + oneLine(t.Message)
		}
		return ""
	}
	defer r.Close()
	b, _ := io.ReadAll(io.LimitReader(r, 8<<10))
	if s := oneLine(string(b)); s != "" {
		return "; last log lines: " + s
	}
	return ""
}

// oneLine joins lines with " | ", trimmed.
func oneLine(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, " | ")
}

// instanceStatus is one pod as a replica of its deployment.
func instanceStatus(p *corev1.Pod) driver.InstanceStatus {
	in := driver.InstanceStatus{ID: podID(p), Name: p.Name, Template: p.Annotations[AnnotationTemplate]}
	if p.Status.PodIP != "" {
		if port := servingPort(p); port > 0 {
			in.Addr = fmt.Sprintf("%s:%d", p.Status.PodIP, port)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			in.Ready = c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil
			if !in.Ready {
				in.Message = c.Message
			}
		}
	}
	if cs := containerStatus(p, ServingContainer); cs != nil {
		in.Restarts = int(cs.RestartCount)
		if cs.State.Running != nil {
			in.StartedAt = cs.State.Running.StartedAt.UTC()
		}
	}
	return in
}
