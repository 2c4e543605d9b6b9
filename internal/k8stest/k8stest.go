// Package k8stest gives tests a real single-node Kubernetes cluster: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, and a kubelet
// running pods with containerd, runc and the bridge CNI plugin.
//
// The whole cluster lives inside a network namespace the harness creates
// (named plk-<pid>-<random>): the API server listens on that namespace's
// loopback, the node's address (NodeIP) is the pod bridge's, and every pod
// address is on that bridge. No test traffic leaves the namespace. Tests
// reach the cluster through Cluster.DialContext (a socket made inside the
// namespace), Cluster.HTTPClient, Cluster.Client (client-go) and
// Cluster.Command (a program run inside it, e.g. kubectl or plumbline).
// containerd and the kubelet also run in a private mount namespace, so their
// mounts and the sysctl values the kubelet insists on never reach the host.
//
// Where the Kubernetes binaries are: PLUMBLINE_TEST_K8S_BIN, else the folder
// named in /var/cache/plumbline-ci/k8s.env (scripts/install-kubernetes.sh
// builds them once from the Go module proxy). Without them, or without
// root, containerd, runc, etcd and the CNI plugins, tests are skipped, and
// fail under PLUMBLINE_CI=1.
//
// Teardown kills every process of the cluster (those in its network
// namespace and those in its cgroups), removes its cgroups, its network
// namespace and its folder, even when a test failed; a cluster left by a
// test binary that was killed is swept by the next one.
//
// This package is for tests only.
package k8stest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// BinEnv names the variable that gives the folder of the Kubernetes binaries.
const BinEnv = "PLUMBLINE_TEST_K8S_BIN"

// envFile is written by scripts/install-kubernetes.sh.
const envFile = "/var/cache/plumbline-ci/k8s.env"

// Cluster is a running single-node cluster.
type Cluster struct {
	// Name names the network namespace (/run/netns/<Name>) and the
	// kubelet's cgroup root.
	Name string
	// Dir holds the cluster's configuration, state and logs.
	Dir string
	// Kubeconfig is the admin's kubeconfig (server https://127.0.0.1:6443,
	// reachable inside the namespace only).
	Kubeconfig string
	// Config is the admin's client configuration; it dials inside the
	// namespace.
	Config *rest.Config
	// Client is a clientset on Config.
	Client kubernetes.Interface

	bin       string
	pki       *pki
	mu        sync.Mutex // protects procs
	procs     []*exec.Cmd
	startedAt time.Time
}

// Binaries returns the folder of the Kubernetes binaries, or why there is
// none usable.
func Binaries() (string, error) {
	dir := os.Getenv(BinEnv)
	if dir == "" {
		dir = envFileValue(BinEnv)
	}
	if dir == "" {
		return "", fmt.Errorf("no Kubernetes binaries: set %s or run scripts/install-kubernetes.sh", BinEnv)
	}
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("%s: %w (run scripts/install-kubernetes.sh)", b, err)
		}
	}
	return dir, nil
}

// Available says why a cluster cannot start here, or nil.
func Available() error {
	if runtime.GOOS != "linux" {
		return errors.New("needs Linux")
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, cgroups, mounts)")
	}
	if _, err := Binaries(); err != nil {
		return err
	}
	for _, p := range []string{"etcd", "containerd", "ctr", "runc", "ip", "nsenter", "unshare"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s is not installed (run scripts/install-kubernetes.sh)", p)
		}
	}
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("CNI plugin %s is missing (apt-get install containernetworking-plugins)", p)
		}
	}
	return nil
}

// skipOrFail skips t, or fails it under PLUMBLINE_CI=1.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("PLUMBLINE_CI") == "1" {
		t.Fatalf("PLUMBLINE_CI=1 and no Kubernetes test cluster: %v", err)
	}
	t.Skipf("no Kubernetes test cluster: %v", err)
}

var (
	sharedMu  sync.Mutex
	shared    *Cluster
	sharedErr error
)

// Shared returns the test binary's cluster, starting it on first use. It is
// stopped by Main. Tests isolate themselves with Namespace.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	if err := Available(); err != nil {
		skipOrFail(t, err)
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		begin := time.Now()
		shared, sharedErr = Start(ctx)
		cancel()
		if sharedErr == nil {
			t.Logf("k8stest: cluster %s up in %s", shared.Name, time.Since(begin).Round(100*time.Millisecond))
		}
	}
	if sharedErr != nil {
		t.Fatalf("start the test cluster: %v", sharedErr)
	}
	return shared
}

// Main runs the tests of m, then stops the shared cluster if one was
// started, after the cleanups. A package whose tests use Shared calls it
// from TestMain:
//
//	func TestMain(m *testing.M) { k8stest.Main(m) }
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	sharedMu.Lock()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "k8stest: stop the cluster: %v\n", err)
			code = 1
		}
		shared = nil
	}
	sharedMu.Unlock()
	os.Exit(code)
}

// Start brings a cluster up and waits until its node is Ready and the
// default service account exists. On failure everything it started is torn
// down and the error carries the failing component's last log lines.
func Start(ctx context.Context) (c *Cluster, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	sweep()
	bin, _ := Binaries()
	b := make([]byte, 3)
	rand.Read(b)
	name := fmt.Sprintf("plk-%d-%s", os.Getpid(), hex.EncodeToString(b))
	c = &Cluster{Name: name, Dir: filepath.Join(os.TempDir(), name), bin: bin, startedAt: time.Now()}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w%s", err, c.logTails())
			if os.Getenv("PLUMBLINE_K8STEST_KEEP") == "1" {
				err = fmt.Errorf("%w\n(kept for inspection: %s, network namespace %s)", err, c.Dir, c.Name)
			} else if serr := c.Stop(); serr != nil {
				err = fmt.Errorf("%w; and stopping it: %v", err, serr)
			}
			c = nil
		}
	}()
	for _, d := range []string{"logs", "images", "state/etcd", "state/kubelet", "state/pod-logs", "kube-cache"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o700); err != nil {
			return c, err
		}
	}
	if c.pki, err = newPKI(filepath.Join(c.Dir, "pki"), NodeIP); err != nil {
		return c, fmt.Errorf("certificates: %w", err)
	}
	conf := filepath.Join(c.Dir, "conf")
	os.MkdirAll(conf, 0o700)
	c.Kubeconfig = filepath.Join(conf, "admin.kubeconfig")
	for file, user := range map[string]string{
		"admin.kubeconfig": "admin", "kcm.kubeconfig": "system:kube-controller-manager",
		"scheduler.kubeconfig": "system:kube-scheduler", "kubelet.kubeconfig": "system:node:" + NodeName,
	} {
		if err := c.pki.kubeconfig(filepath.Join(conf, file), user); err != nil {
			return c, err
		}
	}
	if err := c.writeConfigs(); err != nil {
		return c, err
	}
	pause, err := pauseImageTar()
	if err != nil {
		return c, fmt.Errorf("pause image: %w", err)
	}
	if err := os.Link(pause, filepath.Join(c.Dir, "images", "pause.tar")); err != nil {
		if err := copyFile(pause, filepath.Join(c.Dir, "images", "pause.tar")); err != nil {
			return c, err
		}
	}

	// The network namespace, its loopback and the pod bridge.
	for _, args := range [][]string{
		{"netns", "add", name},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "link", "add", bridgeName, "type", "bridge"},
		{"-n", name, "addr", "add", NodeIP + "/16", "dev", bridgeName},
		{"-n", name, "link", "set", bridgeName, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return c, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	if err := makeCgroups(name); err != nil {
		return c, err
	}
	c.Config = &rest.Config{
		Host:            fmt.Sprintf("https://127.0.0.1:%d", apiserverPort),
		BearerToken:     c.pki.tokens["admin"],
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.pki.path("ca.crt")},
		Dial:            c.DialContext,
		QPS:             50,
		Burst:           100,
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return c, err
	}

	p := c.pki.path
	state := filepath.Join(c.Dir, "state")
	if err := c.run("etcd", "etcd", "--name", "plk", "--data-dir", filepath.Join(state, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort),
		"--initial-cluster", fmt.Sprintf("plk=http://127.0.0.1:%d", etcdPeerPort),
		"--listen-metrics-urls", "", "--quota-backend-bytes", "1073741824"); err != nil {
		return c, err
	}
	if err := c.run("kube-apiserver", filepath.Join(bin, "kube-apiserver"),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiserverPort), "--advertise-address="+NodeIP,
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"), "--client-ca-file="+p("ca.crt"),
		"--token-auth-file="+p("tokens.csv"), "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.96.0.0/16",
		"--kubelet-client-certificate="+p("apiserver-kubelet-client.crt"), "--kubelet-client-key="+p("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP", "--allow-privileged=true", "--profiling=false"); err != nil {
		return c, err
	}
	if err := c.waitAPIServer(ctx); err != nil {
		return c, err
	}
	if err := c.run("kube-controller-manager", filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig="+filepath.Join(conf, "kcm.kubeconfig"),
		"--authentication-kubeconfig="+filepath.Join(conf, "kcm.kubeconfig"),
		"--authorization-kubeconfig="+filepath.Join(conf, "kcm.kubeconfig"),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", kcmPort),
		"--controllers=*", "--use-service-account-credentials=true", "--service-account-private-key-file="+p("sa.key"),
		"--root-ca-file="+p("ca.crt"), "--flex-volume-plugin-dir="+filepath.Join(state, "kcm-flexvolume"),
		"--leader-elect=false", "--profiling=false"); err != nil {
		return c, err
	}
	if err := c.run("kube-scheduler", filepath.Join(bin, "kube-scheduler"),
		"--kubeconfig="+filepath.Join(conf, "scheduler.kubeconfig"),
		"--authentication-kubeconfig="+filepath.Join(conf, "scheduler.kubeconfig"),
		"--authorization-kubeconfig="+filepath.Join(conf, "scheduler.kubeconfig"),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", schedulerPort),
		"--leader-elect=false", "--profiling=false"); err != nil {
		return c, err
	}
	for _, d := range []string{"/run/containerd", "/var/lib/cni", "/var/log/containers", "/var/lib/kubelet"} {
		if err := os.MkdirAll(d, 0o755); err != nil { // mount points for the node's private mounts; left in place
			return c, err
		}
	}
	if err := c.run("node", "unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", nodeScript, "node", c.Dir, c.containerdSock(), bin); err != nil {
		return c, err
	}
	if err := c.waitNode(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// containerdSock is the cluster's containerd socket.
func (c *Cluster) containerdSock() string {
	return filepath.Join(c.Dir, "state", "containerd", "containerd.sock")
}

// NetNS is the path of the cluster's network namespace.
func (c *Cluster) NetNS() string { return "/run/netns/" + c.Name }

// run starts a long-running component inside the network namespace, its
// output in logs/<name>.log.
func (c *Cluster) run(name, prog string, args ...string) error {
	log, err := os.OpenFile(filepath.Join(c.Dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command("nsenter", append([]string{"--net=" + c.NetNS(), "--", prog}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "KUBECACHEDIR="+filepath.Join(c.Dir, "kube-cache"))
	// No Pdeathsig: it fires when the forking OS thread ends, and threads
	// that joined the cluster's namespace end (see inNetNS). Stop, and the
	// next run's sweep, end the components.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	go cmd.Wait() // reaps it; Stop kills by namespace and cgroup
	c.mu.Lock()
	c.procs = append(c.procs, cmd)
	c.mu.Unlock()
	return nil
}

func (c *Cluster) waitAPIServer(ctx context.Context) error {
	hc := c.HTTPClient()
	hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: c.caPool()}
	hc.Timeout = 2 * time.Second
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("https://127.0.0.1:%d/readyz", apiserverPort), nil)
		req.Header.Set("Authorization", "Bearer "+c.pki.tokens["admin"])
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the API server did not become ready: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Cluster) waitNode(ctx context.Context) error {
	for {
		if n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{}); err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					if _, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err == nil {
						return nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s did not become Ready: %w", NodeName, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// caPool trusts the cluster's CA.
func (c *Cluster) caPool() *x509.CertPool {
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(c.pki.path("ca.crt")); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	return pool
}

// inNetNS runs fn on an OS thread that joined the cluster's network
// namespace: sockets fn makes belong to it, and stay usable from any
// goroutine. The thread returns to the process's namespace afterwards;
// when that fails it is discarded (its goroutine ends locked).
func (c *Cluster) inNetNS(fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(c.NetNS())
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", c.Name, err)
			return
		}
		fn()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- nil
	}()
	return <-errc
}

// DialContext opens a connection from inside the cluster's network
// namespace. addr must be an IP literal (a name could be resolved on
// another thread, outside the namespace).
func (c *Cluster) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	var derr error
	if err := c.inNetNS(func() {
		var d net.Dialer
		conn, derr = d.DialContext(ctx, network, addr)
	}); err != nil {
		return nil, err
	}
	return conn, derr
}

// HTTPClient returns a client whose connections are made inside the
// cluster's network namespace (pod addresses, NodeIP, its loopback).
func (c *Cluster) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:  c.DialContext,
			MaxIdleConns: 100, MaxIdleConnsPerHost: 100, IdleConnTimeout: 30 * time.Second,
			ForceAttemptHTTP2: false,
		},
	}
}

// Command returns a command that runs prog inside the cluster's network
// namespace, with KUBECONFIG set to the admin's.
func (c *Cluster) Command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + c.NetNS(), "--", prog}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "KUBECACHEDIR="+filepath.Join(c.Dir, "kube-cache"))
	return cmd
}

// Kubectl runs kubectl with args inside the namespace and returns its
// combined output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	out, err := c.Command(ctx, filepath.Join(c.bin, "kubectl"), args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// KubectlPath is the kubectl binary.
func (c *Cluster) KubectlPath() string { return filepath.Join(c.bin, "kubectl") }

// Namespace creates a namespace for t (its name derived from the test's)
// and deletes it when t ends, waiting until its pods are gone.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	base := strings.ToLower(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, t.Name()))
	if len(base) > 40 {
		base = base[:40]
	}
	name := strings.Trim(base, "-") + "-" + hex.EncodeToString(b)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.Client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	// Pods need the namespace's default service account.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.Client.CoreV1().ServiceAccounts(name).Get(t.Context(), "default", metav1.GetOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s has no default service account after 30s", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() {
		zero := int64(0)
		ctx := context.Background()
		c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		// The next test gets the node's CPU and memory back: wait until
		// the namespace's pods are gone (they request resources until then).
		deadline := time.Now().Add(90 * time.Second)
		for {
			pods, err := c.Client.CoreV1().Pods(name).List(ctx, metav1.ListOptions{})
			if err != nil || len(pods.Items) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Logf("k8stest: %d pods of namespace %s still there 90 s after its deletion", len(pods.Items), name)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	return name
}

// ImportImage imports a docker-archive or OCI tar into the node's containerd
// (namespace k8s.io), where pods with imagePullPolicy Never or IfNotPresent
// find it.
func (c *Cluster) ImportImage(ctx context.Context, tar string) error {
	out, err := exec.CommandContext(ctx, "ctr", "--address", c.containerdSock(), "-n", "k8s.io", "images", "import", tar).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import %s into containerd: %w: %s", tar, err, out)
	}
	return nil
}

// Log returns the last n lines of a component's log ("kubelet",
// "kube-apiserver", "containerd", …).
func (c *Cluster) Log(name string, n int) string {
	return tail(filepath.Join(c.Dir, "logs", name+".log"), n)
}

func (c *Cluster) logTails() string {
	var b strings.Builder
	for _, n := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "node", "containerd", "kubelet"} {
		if s := c.Log(n, 15); s != "" {
			fmt.Fprintf(&b, "\n--- %s (last lines):\n%s", n, s)
		}
	}
	return b.String()
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// Stop tears the cluster down: every process in its network namespace and
// in its cgroups is killed, the cgroups, the namespace and the folder are
// removed. It is safe on a half-started cluster.
func (c *Cluster) Stop() error {
	err := teardown(c.Name, c.Dir)
	c.mu.Lock()
	for _, p := range c.procs {
		if p.Process != nil {
			p.Process.Kill()
		}
	}
	c.mu.Unlock()
	return err
}

// teardown removes cluster name: kills its processes (repeatedly, until
// none is left, since a dying shim or kubelet may have just forked), then
// removes its cgroups, network namespace and folder.
func teardown(name, dir string) error {
	var errs []error
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := clusterPids(name)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("processes of cluster %s still alive after 30s: %v", name, pids))
			break
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := removeCgroups(name); err != nil {
		errs = append(errs, err)
	}
	if _, err := os.Stat("/run/netns/" + name); err == nil {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", name, err, out))
		}
	}
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// clusterPids lists the processes of cluster name: those in its network
// namespace (the control plane, containerd, shims, the kubelet) and those
// in its cgroups (the pods' containers, in network namespaces of their own).
func clusterPids(name string) []int {
	seen := map[int]bool{}
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if p, err := strconv.Atoi(f); err == nil {
				seen[p] = true
			}
		}
	}
	for _, root := range cgroupRoots(name) {
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(b)) {
				if p, err := strconv.Atoi(f); err == nil {
					seen[p] = true
				}
			}
			return nil
		})
	}
	delete(seen, os.Getpid())
	out := make([]int, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// cgroupRoots lists the kubelet's cgroup root of cluster name in every
// mounted hierarchy (cgroup v1 controllers and the v2 "unified" one).
func cgroupRoots(name string) []string {
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	var out []string
	for _, h := range hs {
		var st unix.Statfs_t
		if unix.Statfs(h, &st) != nil || (st.Type != unix.CGROUP_SUPER_MAGIC && st.Type != unix.CGROUP2_SUPER_MAGIC) {
			continue
		}
		out = append(out, filepath.Join(h, name))
	}
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		out = append(out, filepath.Join("/sys/fs/cgroup", name)) // pure cgroup v2
	}
	return out
}

// makeCgroups creates the kubelet's cgroup root in every cgroup v1
// hierarchy (the kubelet and runc create it in the v2 one themselves), with
// the cpuset of its parent.
func makeCgroups(name string) error {
	for _, r := range cgroupRoots(name) {
		h := filepath.Dir(r)
		if filepath.Base(h) == "unified" || h == "/sys/fs/cgroup" {
			continue
		}
		if err := os.Mkdir(r, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("cgroup %s: %w", r, err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(r, f), b, 0o644); err != nil {
					return fmt.Errorf("cgroup %s/%s: %w", r, f, err)
				}
			}
		}
	}
	return nil
}

// removeCgroups removes the cluster's cgroup trees, deepest first.
func removeCgroups(name string) error {
	var errs []error
	for _, r := range cgroupRoots(name) {
		if _, err := os.Stat(r); err != nil {
			continue
		}
		var dirs []string
		filepath.WalkDir(r, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 50; try++ { // a cgroup empties a moment after its last process died
				if err = unix.Rmdir(dirs[i]); err == nil || errors.Is(err, unix.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// sweep tears down clusters left by test binaries that no longer run.
func sweep() {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		parts := strings.Split(e.Name(), "-")
		if len(parts) != 3 || parts[0] != "plk" {
			continue
		}
		pid, err := strconv.Atoi(parts[1])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		teardown(e.Name(), filepath.Join(os.TempDir(), e.Name()))
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// HelmEnv names the variable that gives the helm binary.
const HelmEnv = "PLUMBLINE_TEST_HELM"

// Helm returns the helm binary: PLUMBLINE_TEST_HELM, else the one named in
// /var/cache/plumbline-ci/k8s.env, else helm on the PATH.
func Helm() (string, error) {
	p := os.Getenv(HelmEnv)
	if p == "" {
		p = envFileValue(HelmEnv)
	}
	if p == "" {
		if lp, err := exec.LookPath("helm"); err == nil {
			return lp, nil
		}
		return "", fmt.Errorf("no helm: set %s or run scripts/install-kubernetes.sh", HelmEnv)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("helm: %w (run scripts/install-kubernetes.sh)", err)
	}
	return p, nil
}

// envFileValue reads one exported variable of the install script's env file.
func envFileValue(name string) string {
	b, err := os.ReadFile(envFile)
	if err != nil {
		return ""
	}
	v := ""
	for _, line := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "export "+name+"="); ok {
			v = strings.Trim(s, `"'`)
		}
	}
	return v
}

// Listen opens a listener inside the cluster's network namespace (on
// NodeIP, pods reach it).
func (c *Cluster) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	var lerr error
	if err := c.inNetNS(func() { l, lerr = net.Listen(network, addr) }); err != nil {
		return nil, err
	}
	return l, lerr
}
