#!/usr/bin/env bash
# Installs what plumbline's Kubernetes tests need on a Debian 12 machine
# without a container registry and without downloads other than Debian's
# packages and the Go module proxy:
#
#   - from Debian: containerd, runc, the CNI plugins (bridge, host-local),
#     etcd, iproute2, util-linux (unshare, nsenter);
#   - Kubernetes itself (kube-apiserver, kube-controller-manager,
#     kube-scheduler, kubelet, kubectl), built from its Go modules with
#     `go build`, once, cached under $PLUMBLINE_K8S_CACHE (default
#     /var/cache/plumbline-ci/k8s-$K8S_VERSION): a cold build takes about
#     9 minutes on 2 quiet cores and ~3 GiB of memory, a warm run nothing;
#   - helm, built the same way, cached beside it (helm-$HELM_VERSION).
#
#   bash scripts/install-kubernetes.sh     # then: . /var/cache/plumbline-ci/k8s.env
#
# It writes /var/cache/plumbline-ci/k8s.env, which exports
# PLUMBLINE_TEST_K8S_BIN (the folder of the Kubernetes binaries) and
# PLUMBLINE_TEST_HELM (the helm binary); the cluster test harness
# (internal/k8stest) reads them. The cluster itself is started by the tests,
# inside a network namespace they create, and torn down by them.
# Safe to run again; says what it does and how long each step took.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.33.13}
HELM_VERSION=${HELM_VERSION:-v3.21.4}
CACHE=${PLUMBLINE_CI_CACHE:-/var/cache/plumbline-ci}
K8S_DIR=${PLUMBLINE_K8S_CACHE:-$CACHE/k8s-$K8S_VERSION}
HELM_DIR=$CACHE/helm-$HELM_VERSION
export PATH="/usr/local/go/bin:$PATH"
T0=$(date +%s)
step() { echo "install-kubernetes [+$(( $(date +%s) - T0 ))s] $*"; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

pkgs=(containerd runc containernetworking-plugins etcd-server iproute2 util-linux openssl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing from Debian: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get -o DPkg::Lock::Timeout=900 update -qq
  # etcd-server's postinst asks the init system to start etcd; without one
  # that is refused, harmlessly: the tests start their own etcd.
  $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  step "packages present (${pkgs[*]})"
fi
# The Debian packages start nothing here (no init system); make sure no
# packaged etcd or containerd was left running by a postinst either.

$sudo mkdir -p "$CACHE"

# built DIR VERSION BIN...: the binaries are there and say VERSION.
built() {
  local dir=$1 want=$2; shift 2
  for b in "$@"; do [ -x "$dir/bin/$b" ] || return 1; done
  [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$want" ]
}

K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
if built "$K8S_DIR" "$K8S_VERSION" "${K8S_CMDS[@]}"; then
  step "Kubernetes $K8S_VERSION binaries present in $K8S_DIR"
else
  step "building Kubernetes $K8S_VERSION (${K8S_CMDS[*]}) from the Go module proxy into $K8S_DIR (cold: ~9 min on 2 quiet cores)"
  build=$K8S_DIR/build
  $sudo rm -rf "$K8S_DIR/bin" "$K8S_DIR/VERSION"
  $sudo mkdir -p "$build" "$K8S_DIR/bin"
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  # k8s.io/kubernetes requires its staging modules at v0.0.0: each is
  # replaced by its published release, v0.<minor>.<patch>.
  {
    echo "module plumbline.local/k8s-build"; echo; echo "go 1.24.0"; echo
    echo "require k8s.io/kubernetes $K8S_VERSION"; echo; echo "replace ("
    for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider cluster-bootstrap \
      code-generator component-base component-helpers controller-manager cri-api cri-client csi-translation-lib \
      dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy \
      kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller; do
      echo "	k8s.io/$m => k8s.io/$m v0${K8S_VERSION#v1}"
    done
    echo ")"
  } > "$build/go.mod"
  rm -f "$build/go.sum"
  cd "$build"
  # The @version matters: without it go get takes the newest release.
  step "go get -tool k8s.io/kubernetes/cmd/…@$K8S_VERSION"
  go get -tool $(for c in "${K8S_CMDS[@]}"; do echo "k8s.io/kubernetes/cmd/$c@$K8S_VERSION"; done)
  ldf="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  done
  ldf="$ldf -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
  step "go build (GOCACHE=$(go env GOCACHE))"
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldf" -o "$K8S_DIR/bin/" $(for c in "${K8S_CMDS[@]}"; do echo "k8s.io/kubernetes/cmd/$c"; done)
  echo "$K8S_VERSION" > "$K8S_DIR/VERSION"
  cd - >/dev/null
  step "built: $(ls "$K8S_DIR/bin" | tr '\n' ' ')($(du -sh "$K8S_DIR/bin" | cut -f1))"
fi

if built "$HELM_DIR" "$HELM_VERSION" helm; then
  step "helm $HELM_VERSION present in $HELM_DIR"
else
  step "building helm $HELM_VERSION from the Go module proxy into $HELM_DIR"
  build=$HELM_DIR/build
  $sudo rm -rf "$HELM_DIR/bin" "$HELM_DIR/VERSION"
  $sudo mkdir -p "$build" "$HELM_DIR/bin"
  printf 'module plumbline.local/helm-build\n\ngo 1.24.0\n' > "$build/go.mod"
  rm -f "$build/go.sum"
  cd "$build"
  go get -tool "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$HELM_DIR/bin/helm" helm.sh/helm/v3/cmd/helm
  echo "$HELM_VERSION" > "$HELM_DIR/VERSION"
  cd - >/dev/null
  step "built: $("$HELM_DIR/bin/helm" version --short 2>/dev/null || echo helm)"
fi

cat > "$CACHE/k8s.env" <<ENV
# Written by plumbline's scripts/install-kubernetes.sh. Source it to run the
# Kubernetes tests (internal/k8stest starts the cluster itself).
export PLUMBLINE_TEST_K8S_BIN=$K8S_DIR/bin
export PLUMBLINE_TEST_HELM=$HELM_DIR/bin/helm
ENV
step "done: . $CACHE/k8s.env"
