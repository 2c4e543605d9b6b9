// Package kubernetes is the Kubernetes driver: an online deployment becomes
// a Kubernetes Deployment (replicas = instance_count, the image, Azure's
// container contract, the YAML's liveness and readiness probes, resources
// from instance_type or kubernetesOnlineDeployment's resources) with a
// headless Service whose EndpointSlices tell the gateways which pods are
// ready. Kubernetes probes, restarts and rolls the pods; plumbline declares
// and observes (driver.DeploymentDriver). Model and code are not baked into
// images: a storage-initializer init container runs `plumbline fetch`
// against the control plane's registry with a token scoped to the
// deployment's artifacts, and the serving container sees them read-only at
// Azure's paths.
//
// Pod and Deployment conditions become Azure's reasons with what to do
// (ImagePullLoopBackOff, KubernetesCrashLoopBackOff with the last log
// lines, PodOutOfMemory, PodUnschedulable with the scheduler's message).
//
// This package may import driver and container; it must not import the
// store, the registry, the reconciler or the gateway.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/plumbline/plumbline/internal/driver"
)

// TokenFunc mints a token that lets `plumbline fetch` read exactly the
// artifacts with these digests from the control plane, for the pods of one
// deployment.
type TokenFunc func(ctx context.Context, endpoint, deployment string, digests []string) (string, error)

// Config configures a Driver.
type Config struct {
	// REST is the API server connection; nil means Kubeconfig.
	REST *rest.Config
	// Kubeconfig is a kubeconfig file; "" means the in-cluster
	// configuration (a pod's service account), else KUBECONFIG or
	// ~/.kube/config.
	Kubeconfig string
	// Namespace is where the driver makes its objects. Required.
	Namespace string
	// Owner is the id of the plumbline installation that owns the objects
	// (the plumbline.io/owner label): a driver never touches another
	// owner's objects. Required.
	Owner string
	// FetchImage is the image of the storage initializer, one with the
	// plumbline binary on its PATH. Required for deployments with a model
	// or code.
	FetchImage string
	// FetchServer is the control plane's URL as pods reach it
	// (https://plumbline-control.plumbline.svc:8443).
	FetchServer string
	// FetchCA is the PEM certificate that the control plane's TLS
	// certificate chains to.
	FetchCA []byte
	// Token mints the fetch tokens. Required with FetchImage.
	Token TokenFunc
	// ImagePullPolicy for the serving and init containers; "" means
	// IfNotPresent.
	ImagePullPolicy corev1.PullPolicy
	// ProgressDeadline is the Deployment's progressDeadlineSeconds; zero
	// means 600 s (Kubernetes' default).
	ProgressDeadline time.Duration
	Logger           *slog.Logger
}

// Driver runs deployments on Kubernetes. It is safe for concurrent use.
type Driver struct {
	cfg    Config
	client kubernetes.Interface
	log    *slog.Logger
}

var (
	_ driver.Driver           = (*Driver)(nil)
	_ driver.DeploymentDriver = (*Driver)(nil)
)

// RESTConfig loads a client configuration: kubeconfig when given, else the
// in-cluster one, else KUBECONFIG or ~/.kube/config.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			return c, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes driver: no cluster configuration (%v); run inside a pod, or pass --kubeconfig", err)
	}
	return c, nil
}

// New connects to the API server and checks that the namespace can be read.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.Namespace == "" {
		return nil, errors.New("kubernetes driver: a namespace is required")
	}
	if cfg.Owner == "" {
		return nil, errors.New("kubernetes driver: an owner id is required")
	}
	if cfg.ImagePullPolicy == "" {
		cfg.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if cfg.ProgressDeadline <= 0 {
		cfg.ProgressDeadline = 600 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rc := cfg.REST
	if rc == nil {
		var err error
		if rc, err = RESTConfig(cfg.Kubeconfig); err != nil {
			return nil, err
		}
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "plumbline"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes driver: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := cs.AppsV1().Deployments(cfg.Namespace).List(cctx, metav1.ListOptions{Limit: 1}); err != nil {
		return nil, fmt.Errorf("kubernetes driver: cannot list Deployments in namespace %s at %s (%v); check the namespace and that the service account's Role allows deployments, services, secrets and pods there", cfg.Namespace, rc.Host, err)
	}
	return &Driver{cfg: cfg, client: cs, log: cfg.Logger}, nil
}

// Client is the driver's clientset (the EndpointSlice route source shares it).
func (d *Driver) Client() kubernetes.Interface { return d.client }

// Namespace is where the driver's objects are.
func (d *Driver) Namespace() string { return d.cfg.Namespace }

// Name implements driver.Driver.
func (d *Driver) Name() string { return "kubernetes" }

// owned reports whether obj carries this driver's owner labels.
func (d *Driver) owned(m metav1.Object) bool {
	l := m.GetLabels()
	return l[LabelManagedBy] == managedBy && l[LabelOwner] == labelValue(d.cfg.Owner)
}

// ApplyDeployment implements driver.DeploymentDriver: the Deployment, then
// the fetch token's Secret and the headless Service, both owned by the
// Deployment (deleting it deletes them).
func (d *Driver) ApplyDeployment(ctx context.Context, spec driver.DeploymentSpec) error {
	id := spec.Endpoint + "/" + spec.Deployment
	t := spec.Template
	switch {
	case t.Image == "":
		return &driver.StartError{ID: id, Reason: "the kubernetes driver runs images; the deployment's environment has no image (set environment.image)"}
	case t.Port < 1 || t.Port > 65535:
		return &driver.StartError{ID: id, Reason: fmt.Sprintf("container port %d is not 1-65535; set inference_config's scoring_route.port", t.Port)}
	case spec.Replicas < 0:
		return &driver.StartError{ID: id, Reason: fmt.Sprintf("instance_count %d is negative", spec.Replicas)}
	case (spec.Model != nil || spec.Code != nil) && (d.cfg.FetchImage == "" || d.cfg.FetchServer == "" || d.cfg.Token == nil):
		return &driver.StartError{ID: id, Reason: "the deployment has a model or code, and the kubernetes driver has no storage initializer configured (serve --k8s-fetch-image and --k8s-fetch-url)"}
	}
	name := ObjectName(spec.Endpoint, spec.Deployment)
	want := d.deploymentObject(spec, name)
	// The API server fills defaults into what it stores, so "what we
	// want" is compared by a hash of our own object, kept in an
	// annotation: applying the same spec again changes nothing.
	want.Annotations[AnnotationSpec] = specHash(want)
	deps := d.client.AppsV1().Deployments(d.cfg.Namespace)
	var cur *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		cur, err = deps.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			cur, err = deps.Create(ctx, want, metav1.CreateOptions{FieldManager: "plumbline"})
			return err
		case err != nil:
			return err
		case !d.owned(cur):
			return &driver.StartError{ID: id, Reason: fmt.Sprintf("a Deployment named %s exists in namespace %s and is not this plumbline's (owner label %q); delete or rename it", name, d.cfg.Namespace, cur.Labels[LabelOwner])}
		case cur.Annotations[AnnotationSpec] == want.Annotations[AnnotationSpec]:
			return nil
		}
		cur.Labels, cur.Annotations, cur.Spec = want.Labels, want.Annotations, want.Spec
		cur, err = deps.Update(ctx, cur, metav1.UpdateOptions{FieldManager: "plumbline"})
		return err
	})
	var se *driver.StartError
	if errors.As(err, &se) {
		return err
	}
	if err != nil {
		return d.applyError(id, "apply Deployment "+name, err)
	}
	owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: cur.Name, UID: cur.UID, Controller: ptr(true), BlockOwnerDeletion: ptr(true)}
	if spec.Model != nil || spec.Code != nil {
		if err := d.applySecret(ctx, spec, name, owner); err != nil {
			return err
		}
	}
	return d.applyService(ctx, spec, name, owner)
}

func (d *Driver) applyError(id, what string, err error) error {
	if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
		return &driver.StartError{ID: id, Reason: "the cluster refused it: " + what, Err: err}
	}
	return fmt.Errorf("deployment %s: %s: %w", id, what, err)
}

func (d *Driver) applySecret(ctx context.Context, spec driver.DeploymentSpec, name string, owner metav1.OwnerReference) error {
	id := spec.Endpoint + "/" + spec.Deployment
	var digests []string
	for _, a := range []*driver.Artifact{spec.Model, spec.Code} {
		if a != nil {
			digests = append(digests, a.Digest)
		}
	}
	tok, err := d.cfg.Token(ctx, spec.Endpoint, spec.Deployment, digests)
	if err != nil {
		return fmt.Errorf("deployment %s: mint the fetch token: %w", id, err)
	}
	m := d.meta(spec, name)
	m.OwnerReferences = []metav1.OwnerReference{owner}
	want := &corev1.Secret{
		ObjectMeta: m,
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{FetchTokenKey: []byte(tok), FetchCAKey: d.cfg.FetchCA},
	}
	secrets := d.client.CoreV1().Secrets(d.cfg.Namespace)
	cur, err := secrets.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = secrets.Create(ctx, want, metav1.CreateOptions{FieldManager: "plumbline"})
	case err == nil && !d.owned(cur):
		return &driver.StartError{ID: id, Reason: fmt.Sprintf("a Secret named %s exists in namespace %s and is not this plumbline's; delete or rename it", name, d.cfg.Namespace)}
	case err == nil:
		cur.Labels, cur.Annotations, cur.OwnerReferences, cur.Data = want.Labels, want.Annotations, want.OwnerReferences, want.Data
		_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{FieldManager: "plumbline"})
	}
	if err != nil {
		return d.applyError(id, "Secret "+name, err)
	}
	return nil
}

func (d *Driver) applyService(ctx context.Context, spec driver.DeploymentSpec, name string, owner metav1.OwnerReference) error {
	id := spec.Endpoint + "/" + spec.Deployment
	want := d.serviceObject(spec, name, owner)
	svcs := d.client.CoreV1().Services(d.cfg.Namespace)
	cur, err := svcs.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = svcs.Create(ctx, want, metav1.CreateOptions{FieldManager: "plumbline"})
	case err == nil && !d.owned(cur):
		return &driver.StartError{ID: id, Reason: fmt.Sprintf("a Service named %s exists in namespace %s and is not this plumbline's; delete or rename it", name, d.cfg.Namespace)}
	case err == nil:
		cur.Labels, cur.Annotations, cur.OwnerReferences = want.Labels, want.Annotations, want.OwnerReferences
		cur.Spec.Selector, cur.Spec.Ports = want.Spec.Selector, want.Spec.Ports
		_, err = svcs.Update(ctx, cur, metav1.UpdateOptions{FieldManager: "plumbline"})
	}
	if err != nil {
		return d.applyError(id, "Service "+name, err)
	}
	return nil
}

// DeleteDeployment implements driver.DeploymentDriver. The Service and the
// Secret go with the Deployment (owner references); its pods get their
// termination grace (preStop first).
func (d *Driver) DeleteDeployment(ctx context.Context, endpoint, deployment string) error {
	name := ObjectName(endpoint, deployment)
	cur, err := d.client.AppsV1().Deployments(d.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete deployment %s/%s: %w", endpoint, deployment, err)
	}
	if !d.owned(cur) {
		return fmt.Errorf("delete deployment %s/%s: the Deployment %s is not this plumbline's", endpoint, deployment, name)
	}
	bg := metav1.DeletePropagationBackground
	err = d.client.AppsV1().Deployments(d.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: &bg,
		Preconditions:     &metav1.Preconditions{UID: &cur.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete deployment %s/%s: %w", endpoint, deployment, err)
	}
	return nil
}

// Start implements driver.Driver. Kubernetes makes the instances of a
// deployment (ApplyDeployment); there is no instance to start alone.
func (d *Driver) Start(ctx context.Context, spec driver.InstanceSpec) (driver.Status, error) {
	return driver.Status{}, &driver.StartError{ID: spec.ID, Reason: "the kubernetes driver runs whole deployments (its pods are made by a Kubernetes Deployment), not single instances"}
}

// InstanceID is the driver's ID of a pod: "<endpoint>.<deployment>.<pod>".
func InstanceID(endpoint, deployment, pod string) string {
	return endpoint + "." + deployment + "." + pod
}

// pod finds an instance's pod by ID.
func (d *Driver) pod(ctx context.Context, id string) (*corev1.Pod, error) {
	i := strings.LastIndexByte(id, '.')
	if i < 0 {
		return nil, fmt.Errorf("instance %s: %w", id, driver.ErrNotFound)
	}
	p, err := d.client.CoreV1().Pods(d.cfg.Namespace).Get(ctx, id[i+1:], metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && (!d.owned(p) || podID(p) != id)) {
		return nil, fmt.Errorf("instance %s: %w", id, driver.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", id, err)
	}
	return p, nil
}

func podID(p *corev1.Pod) string {
	return InstanceID(p.Annotations[AnnotationEndpoint], p.Annotations[AnnotationDeployment], p.Name)
}

// Inspect implements driver.Driver for a pod.
func (d *Driver) Inspect(ctx context.Context, id string) (driver.Status, error) {
	p, err := d.pod(ctx, id)
	if err != nil {
		return driver.Status{}, err
	}
	return podStatus(p), nil
}

// List implements driver.Driver: every pod of this owner.
func (d *Driver) List(ctx context.Context) ([]driver.Status, error) {
	sel := labels.SelectorFromSet(map[string]string{LabelManagedBy: managedBy, LabelOwner: labelValue(d.cfg.Owner)})
	pods, err := d.client.CoreV1().Pods(d.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	out := make([]driver.Status, 0, len(pods.Items))
	for i := range pods.Items {
		out = append(out, podStatus(&pods.Items[i]))
	}
	return out, nil
}

// Stop implements driver.Driver: the pod is deleted with grace, and its
// Deployment replaces it.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	p, err := d.pod(ctx, id)
	if err != nil {
		return err
	}
	g := int64(seconds(grace, 0))
	err = d.client.CoreV1().Pods(d.cfg.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &g, Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("instance %s: %w", id, driver.ErrNotFound)
	}
	return err
}

// Recover implements driver.Driver: Kubernetes keeps the pods whatever
// happens to plumbline; there is nothing to re-adopt or clean up, and the
// deployments are observed again.
func (d *Driver) Recover(ctx context.Context) ([]driver.Status, error) { return nil, nil }

// Logs implements driver.Driver: the serving container's log, or the
// storage initializer's with opts.Container.
func (d *Driver) Logs(ctx context.Context, id string, opts driver.LogOptions) (io.ReadCloser, error) {
	p, err := d.pod(ctx, id)
	if err != nil {
		return nil, err
	}
	c := opts.Container
	if c == "" {
		c = ServingContainer
	}
	lo := &corev1.PodLogOptions{Container: c, Follow: opts.Follow}
	if opts.Tail > 0 {
		lo.TailLines = ptr(int64(opts.Tail))
	}
	r, err := d.client.CoreV1().Pods(d.cfg.Namespace).GetLogs(p.Name, lo).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("logs of %s (container %s): %w", id, c, err)
	}
	return r, nil
}

// podStatus maps a pod to the instance contract's Status.
func podStatus(p *corev1.Pod) driver.Status {
	st := driver.Status{ID: podID(p), State: driver.StateStarting, Template: p.Annotations[AnnotationTemplate]}
	if cs := containerStatus(p, ServingContainer); cs != nil {
		switch {
		case cs.State.Running != nil:
			st.State = driver.StateRunning
			st.StartedAt = cs.State.Running.StartedAt.UTC()
		case cs.State.Terminated != nil && (p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded):
			st.State = driver.StateExited
			st.ExitCode = int(cs.State.Terminated.ExitCode)
			st.ExitedAt = cs.State.Terminated.FinishedAt.UTC()
			st.Message = cs.State.Terminated.Reason
		}
	}
	if p.Status.PodIP != "" {
		if port := servingPort(p); port > 0 {
			st.Addr = fmt.Sprintf("%s:%d", p.Status.PodIP, port)
		}
	}
	return st
}

func servingPort(p *corev1.Pod) int {
	for _, c := range p.Spec.Containers {
		if c.Name == ServingContainer {
			for _, port := range c.Ports {
				return int(port.ContainerPort)
			}
		}
	}
	return 0
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	for i := range p.Status.InitContainerStatuses {
		if p.Status.InitContainerStatuses[i].Name == name {
			return &p.Status.InitContainerStatuses[i]
		}
	}
	return nil
}

// Close implements the server's closing driver: the clientset holds
// nothing to release.
func (d *Driver) Close() error { return nil }
