package k8stest

import (
	"fmt"
	"os"
	"path/filepath"
)

// Fixed addresses inside the cluster's own network namespace: nothing else
// lives there, so nothing can collide with them.
const (
	// NodeName is the single node's name.
	NodeName = "plk-node"
	// NodeIP is the node's address: the pod bridge's address, inside the
	// cluster's network namespace. Pods reach servers listening on it.
	NodeIP = "10.77.0.1"
	// PodSubnet is where pod addresses come from.
	PodSubnet = "10.77.0.0/16"

	bridgeName         = "plk0"
	etcdPort           = 2379
	etcdPeerPort       = 2380
	apiserverPort      = 6443
	kcmPort            = 10257
	schedulerPort      = 10259
	kubeletHealthzPort = 10248
	pauseImage         = "localhost/plumbline-test/pause:1"
)

// writeConfigs writes containerd's, the CNI's and the kubelet's
// configuration: the ones measured to work on these machines (see the
// package doc).
func (c *Cluster) writeConfigs() error {
	conf := filepath.Join(c.Dir, "conf")
	if err := os.MkdirAll(filepath.Join(conf, "cni"), 0o700); err != nil {
		return err
	}
	state := filepath.Join(c.Dir, "state")
	containerd := fmt.Sprintf(`version = 2
root = "%[1]s/containerd/root"
state = "%[1]s/containerd/state"
oom_score = 0
[grpc]
  address = "%[2]s"
[ttrpc]
  address = "%[2]s.ttrpc"
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "%[3]s"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    tolerate_missing_hugetlb_controller = true
    max_container_log_line_size = 16384
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      discard_unpacked_layers = false
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "/usr/bin/runc"
          Root = "%[1]s/runc"
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "%[4]s/cni"
      max_conf_num = 1
  [plugins."io.containerd.internal.v1.opt"]
    path = "%[1]s/containerd/opt"
`, state, c.containerdSock(), pauseImage, conf)
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "plk",
  "plugins": [{
    "type": "bridge", "bridge": %q,
    "isGateway": false, "isDefaultGateway": false, "ipMasq": false, "hairpinMode": false,
    "ipam": {"type": "host-local", "dataDir": %q,
      "ranges": [[{"subnet": %q, "rangeStart": "10.77.0.10", "rangeEnd": "10.77.255.250", "gateway": %q}]]}
  }]
}
`, bridgeName, filepath.Join(state, "cni-ipam"), PodSubnet, NodeIP)
	kubelet := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[2]d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[3]s}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://%[4]s
cgroupDriver: cgroupfs
cgroupsPerQOS: true
cgroupRoot: /%[5]s
failSwapOn: false
failCgroupV1: false
protectKernelDefaults: false
resolvConf: ""
podLogsDir: %[6]s/pod-logs
volumePluginDir: %[6]s/kubelet/volume-plugins
oomScoreAdj: 0
serializeImagePulls: false
maxPods: 60
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
`, NodeIP, kubeletHealthzPort, c.pki.path("ca.crt"), c.containerdSock(), c.Name, state)
	for name, body := range map[string]string{
		"containerd.toml":     containerd,
		"cni/10-plk.conflist": cni,
		"kubelet.yaml":        kubelet,
	} {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// nodeScript runs inside a private mount namespace (and the cluster's
// network namespace): it gives the kubelet the sysctl values it wants
// without changing the host's, puts the host paths containerd, libcni and
// the kubelet write to on private folders, starts containerd, imports the
// images, then runs the kubelet. Its mounts disappear with the namespace.
const nodeScript = `set -eu
D=$1; SOCK=$2; BIN=$3
mkdir -p $D/state/fake-sysctl $D/state/ns $D/logs
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=${kv%=*}; v=${kv#*=}
  if [ "$(cat /proc/sys/$k)" != "$v" ]; then
    f=$D/state/fake-sysctl/$(echo $k | tr / .); echo "$v" > $f; mount --bind $f /proc/sys/$k
  fi
done
for d in /run/containerd /var/lib/cni /var/log/containers /var/lib/kubelet; do
  mkdir -p $D/state/ns$d
  mount --bind $D/state/ns$d $d
done
containerd --config $D/conf/containerd.toml > $D/logs/containerd.log 2>&1 &
i=0
until [ -S $SOCK ] && ctr --address $SOCK version >/dev/null 2>&1; do
  i=$((i+1)); [ $i -lt 600 ] || { echo "containerd did not start" >&2; exit 1; }; sleep 0.1
done
for img in $D/images/*.tar; do
  ctr --address $SOCK -n k8s.io images import $img >> $D/logs/ctr-import.log 2>&1 || { echo "import $img failed" >&2; exit 1; }
done
echo imported > $D/state/images-imported
exec $BIN/kubelet --config=$D/conf/kubelet.yaml --kubeconfig=$D/conf/kubelet.kubeconfig \
  --root-dir=$D/state/kubelet --cert-dir=$D/state/kubelet/pki --hostname-override=` + NodeName + ` --node-ip=` + NodeIP + ` --v=1 > $D/logs/kubelet.log 2>&1
`
