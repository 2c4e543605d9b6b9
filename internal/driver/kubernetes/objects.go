package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"math"
	"path"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/plumbline/plumbline/internal/container"
	"github.com/plumbline/plumbline/internal/driver"
)

// Names of what a deployment's pods are made of. ServingContainer and
// InitContainer are Azure's names, which get-logs --container takes.
const (
	ServingContainer = "inference-server"
	InitContainer    = "storage-initializer"
	// FetchTokenKey is the key of the fetch token in the deployment's Secret.
	FetchTokenKey = "token"
	// FetchCAKey is the key of the control plane's CA certificate.
	FetchCAKey = "ca.crt"
)

// Labels and annotations on every object the driver makes.
const (
	LabelManagedBy  = "app.kubernetes.io/managed-by"
	LabelEndpoint   = "plumbline.io/endpoint"
	LabelDeployment = "plumbline.io/deployment"
	LabelOwner      = "plumbline.io/owner"
	// AnnotationTemplate holds the template hash ("t1:…", which a label
	// value cannot hold) on the Deployment and its pod template.
	AnnotationTemplate = "plumbline.io/template"
	// AnnotationEndpoint and AnnotationDeployment keep the names' case.
	AnnotationEndpoint   = "plumbline.io/endpoint-name"
	AnnotationDeployment = "plumbline.io/deployment-name"
	// AnnotationSpec is a hash of the Deployment the driver asked for.
	AnnotationSpec = "plumbline.io/spec"
	managedBy      = "plumbline"
)

// mounts inside the storage initializer, where it writes what the serving
// container then sees read-only at Azure's paths.
const (
	fetchModelDir = "/plumbline/model"
	fetchCodeDir  = "/plumbline/code"
	fetchSecret   = "/plumbline/secret"
)

// ObjectName is the name of the Deployment, Service and Secret of an
// online deployment: "<endpoint>-<deployment>", lower-case, shortened with
// a hash when longer than a DNS label allows.
func ObjectName(endpoint, deployment string) string {
	n := strings.ToLower(endpoint + "-" + deployment)
	if len(n) <= 52 { // pods add "-<hash>-<5>" to the Deployment's name
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return strings.TrimRight(n[:43], "-") + "-" + hex.EncodeToString(sum[:4])
}

// labelValue makes s a valid label value (names are already
// [a-zA-Z0-9-], at most 32 characters).
func labelValue(s string) string {
	s = strings.ToLower(s)
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.Trim(s, "-_.")
}

// selector is the label set that picks one online deployment's pods.
func (d *Driver) selector(endpoint, deployment string) map[string]string {
	return map[string]string{
		LabelManagedBy:  managedBy,
		LabelOwner:      labelValue(d.cfg.Owner),
		LabelEndpoint:   labelValue(endpoint),
		LabelDeployment: labelValue(deployment),
	}
}

func (d *Driver) meta(spec driver.DeploymentSpec, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: d.cfg.Namespace,
		Labels:    d.selector(spec.Endpoint, spec.Deployment),
		Annotations: map[string]string{
			AnnotationEndpoint:   spec.Endpoint,
			AnnotationDeployment: spec.Deployment,
		},
	}
}

// seconds rounds a duration up to whole seconds, at least min.
func seconds(dur time.Duration, min int32) int32 {
	s := int32(math.Ceil(dur.Seconds()))
	if s < min {
		return min
	}
	return s
}

func probe(p driver.Probe, defaultPort int) *corev1.Probe {
	if p.Path == "" {
		return nil
	}
	port := p.Port
	if port == 0 {
		port = defaultPort
	}
	return &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: p.Path, Port: intstr.FromInt32(int32(port))}},
		InitialDelaySeconds: seconds(p.InitialDelay, 0),
		PeriodSeconds:       seconds(p.Period, 1),
		TimeoutSeconds:      seconds(p.Timeout, 1),
		SuccessThreshold:    max(int32(p.SuccessThreshold), 1),
		FailureThreshold:    max(int32(p.FailureThreshold), 1),
	}
}

// resources maps limits (instance_type or resources.limits) and requests.
func resources(spec driver.DeploymentSpec) corev1.ResourceRequirements {
	var r corev1.ResourceRequirements
	t := spec.Template
	if t.CPU > 0 || t.MemoryBytes > 0 {
		r.Limits = corev1.ResourceList{}
		if t.CPU > 0 {
			r.Limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(math.Round(t.CPU*1000)), resource.DecimalSI)
		}
		if t.MemoryBytes > 0 {
			r.Limits[corev1.ResourceMemory] = *resource.NewQuantity(t.MemoryBytes, resource.BinarySI)
		}
	}
	if spec.RequestCPU > 0 || spec.RequestMemoryBytes > 0 {
		r.Requests = corev1.ResourceList{}
		if spec.RequestCPU > 0 {
			r.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(math.Round(spec.RequestCPU*1000)), resource.DecimalSI)
		}
		if spec.RequestMemoryBytes > 0 {
			r.Requests[corev1.ResourceMemory] = *resource.NewQuantity(spec.RequestMemoryBytes, resource.BinarySI)
		}
	}
	return r
}

// layout is where the serving container sees the model and the code.
type layout struct {
	modelDir, codeDir string // "" when absent
	env               []corev1.EnvVar
	command           []string // RuntimeGeneric / RuntimePlumber; nil: the image's own
	args              []string
}

func layoutFor(spec driver.DeploymentSpec) layout {
	t := spec.Template
	// container.For lays out a container from host folders; here the
	// "host" folders are only names: what matters is where they appear.
	if spec.Model != nil {
		t.ModelDir = "/" + spec.Model.Path
	}
	if spec.Code != nil {
		t.CodeDir = "/" + spec.Code.Path
	}
	cl := container.For(t)
	var l layout
	if cl.Model != nil {
		l.modelDir = cl.Model.Container
	}
	if cl.Code != nil {
		l.codeDir = cl.Code.Container
	}
	for _, kv := range cl.Env {
		k, v, _ := strings.Cut(kv, "=")
		l.env = append(l.env, corev1.EnvVar{Name: k, Value: v})
	}
	switch t.Runtime {
	case driver.RuntimeGeneric:
		l.command = cl.Command(t)
	case driver.RuntimePlumber:
		l.command = []string{"Rscript", "-e", plumberLauncher(t.Port)}
	}
	return l
}

// plumberLauncher is plumbline's built-in launcher (the equivalent of the
// seed's start_plumber.R) run with the image's R, on port.
func plumberLauncher(port int) string {
	return `pr <- plumber::plumb(file.path(Sys.getenv("AML_APP_ROOT"), Sys.getenv("AZUREML_ENTRY_SCRIPT"))); ` +
		`pr$setDocs(TRUE); pr$run(host = "0.0.0.0", port = ` + strconv.Itoa(port) + `)`
}

// deploymentObject is the Kubernetes Deployment of spec.
func (d *Driver) deploymentObject(spec driver.DeploymentSpec, name string) *appsv1.Deployment {
	t := spec.Template
	l := layoutFor(spec)
	sel := d.selector(spec.Endpoint, spec.Deployment)
	podLabels := map[string]string{}
	for k, v := range sel {
		podLabels[k] = v
	}
	grace := spec.TerminationGrace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	no, yes := false, true
	replicas := int32(spec.Replicas)
	surge, unavailable := intstr.FromInt32(1), intstr.FromInt32(0)

	serving := corev1.Container{
		Name:            ServingContainer,
		Image:           t.Image,
		ImagePullPolicy: d.cfg.ImagePullPolicy,
		Command:         l.command,
		Args:            l.args,
		Env:             l.env,
		Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: int32(t.Port), Protocol: corev1.ProtocolTCP}},
		ReadinessProbe:  probe(spec.Readiness, t.Port),
		LivenessProbe:   probe(spec.Liveness, t.Port),
		Resources:       resources(spec),
		// The gateway takes a pod out of routing when its EndpointSlice
		// says it is terminating; the sleep lets that happen before the
		// server gets SIGTERM.
		Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: preStopSeconds}}},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no,
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	pod := corev1.PodSpec{
		Containers:                    []corev1.Container{serving},
		TerminationGracePeriodSeconds: ptr(int64(seconds(grace, 1)) + preStopSeconds),
		// Scoring code sees neither the cluster's API nor other services.
		AutomountServiceAccountToken: &no,
		EnableServiceLinks:           &no,
	}
	var fetchArgs []string
	if spec.Model != nil {
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "model", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		// The model volume holds the registered path's basename
		// (models/crate.bin): mounted at AZUREML_MODEL_DIR.
		pod.Containers[0].VolumeMounts = append(pod.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "model", MountPath: l.modelDir, ReadOnly: true})
		fetchArgs = append(fetchArgs, spec.Model.Digest+"="+fetchModelDir)
	}
	if spec.Code != nil {
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "code", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		// The code volume holds the code folder (src/plumber.R); its
		// folder is AML_APP_ROOT.
		pod.Containers[0].VolumeMounts = append(pod.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "code", MountPath: l.codeDir, SubPath: spec.Code.Path, ReadOnly: true})
		fetchArgs = append(fetchArgs, spec.Code.Digest+"="+fetchCodeDir)
	}
	if len(fetchArgs) > 0 {
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "fetch-secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: name, DefaultMode: ptr(int32(0o400)),
		}}})
		init := corev1.Container{
			Name:            InitContainer,
			Image:           d.cfg.FetchImage,
			ImagePullPolicy: d.cfg.ImagePullPolicy,
			Command:         []string{"plumbline", "fetch"},
			Args:            append(fetchFlags(d.cfg), fetchArgs...),
			VolumeMounts:    []corev1.VolumeMount{{Name: "fetch-secret", MountPath: fetchSecret, ReadOnly: true}},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: &no,
				ReadOnlyRootFilesystem:   &yes,
			},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		}
		if spec.Model != nil {
			init.VolumeMounts = append(init.VolumeMounts, corev1.VolumeMount{Name: "model", MountPath: fetchModelDir})
		}
		if spec.Code != nil {
			init.VolumeMounts = append(init.VolumeMounts, corev1.VolumeMount{Name: "code", MountPath: fetchCodeDir})
		}
		pod.InitContainers = []corev1.Container{init}
	}

	dep := &appsv1.Deployment{
		ObjectMeta: d.meta(spec, name),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				// A new replica must be ready before an old one goes, as
				// plumbline's own rolling replacement does.
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
			ProgressDeadlineSeconds: ptr(int32(d.cfg.ProgressDeadline.Seconds())),
			RevisionHistoryLimit:    ptr(int32(3)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: podLabels,
					Annotations: map[string]string{
						AnnotationTemplate:   t.Template,
						AnnotationEndpoint:   spec.Endpoint,
						AnnotationDeployment: spec.Deployment,
					},
				},
				Spec: pod,
			},
		},
	}
	dep.Annotations[AnnotationTemplate] = t.Template
	return dep
}

// serviceObject is the headless Service whose EndpointSlices list the
// deployment's pods (ready or not) for the gateways.
func (d *Driver) serviceObject(spec driver.DeploymentSpec, name string, owner metav1.OwnerReference) *corev1.Service {
	m := d.meta(spec, name)
	m.OwnerReferences = []metav1.OwnerReference{owner}
	return &corev1.Service{
		ObjectMeta: m,
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  d.selector(spec.Endpoint, spec.Deployment),
			Ports: []corev1.ServicePort{{
				Name: "http", Port: int32(spec.Template.Port), TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP,
			}},
			// Not-ready pods are listed too (with ready=false), so a
			// gateway sees a pod leave Ready and come back.
			PublishNotReadyAddresses: false,
		},
	}
}

// fetchFlags are plumbline fetch's flags: the control plane, the token and
// the CA its certificate chains to (none: the system's roots).
func fetchFlags(cfg Config) []string {
	f := []string{"--server", cfg.FetchServer, "--token-file", path.Join(fetchSecret, FetchTokenKey)}
	if len(cfg.FetchCA) > 0 {
		f = append(f, "--ca-cert", path.Join(fetchSecret, FetchCAKey))
	}
	return f
}

// specHash is a digest of what the driver wants of a Deployment: its
// labels, annotations (but this one) and spec.
func specHash(dep *appsv1.Deployment) string {
	ann := map[string]string{}
	for k, v := range dep.Annotations {
		if k != AnnotationSpec {
			ann[k] = v
		}
	}
	b, _ := json.Marshal(struct {
		L, A map[string]string
		S    appsv1.DeploymentSpec
	}{dep.Labels, ann, dep.Spec})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

func ptr[T any](v T) *T { return &v }

// preStopSeconds is how long a terminating pod keeps serving while the
// gateways drop it from their tables.
const preStopSeconds = 3
