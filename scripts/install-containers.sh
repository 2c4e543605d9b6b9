#!/usr/bin/env bash
# Sets up Podman for plumbline's container driver and its tests on a Debian 12
# machine without systemd and without a container registry, then builds the
# R + plumber base image once (cached).
#
#   bash scripts/install-containers.sh          # install, configure, build the base image
#   . /var/cache/plumbline-ci/podman/env         # then: CONTAINERS_* for podman, PLUMBLINE_PODMAN_BASE
#
# Everything podman keeps (config, image store, run state) lives under
# PLUMBLINE_PODMAN_BASE (default /var/cache/plumbline-ci/podman): the host's
# own /etc/containers and /var/lib/containers configuration is never written.
# The base image is keyed by its recipe version (scripts/r-base-image.sh), so
# a warm run does not rebuild it. Safe to run again. Says what it does and
# how long each step took.
#
# The configuration is the one measured to work here: runc (crun cannot run
# on a cgroup v1/hybrid layout), ulimits within the machine's hard nofile
# limit, cgroupfs, file events, and no static_dir (conmon's cleanup would
# open another database and every stop would stall 20 s).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${PLUMBLINE_PODMAN_BASE:-/var/cache/plumbline-ci/podman}
T0=$(date +%s)
step() { echo "install-containers [+$(( $(date +%s) - T0 ))s] $*"; }

pkgs=(podman runc netavark aardvark-dns iptables catatonit mmdebstrap ca-certificates)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  step "installing from Debian: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get -o DPkg::Lock::Timeout=900 update -qq
  $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  step "packages present (${pkgs[*]})"
fi

# The hard nofile limit bounds what a container may ask for; podman's
# default (1048576) makes runc fail with "error setting rlimit type 7".
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nofile" -gt 65536 ] && nofile=65536

$sudo mkdir -p "$BASE"/{conf,store,run,net,tmp}
$sudo chmod 0700 "$BASE"
conf=$(cat <<EOF
# Written by plumbline's scripts/install-containers.sh; private to $BASE.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
log_driver = "k8s-file"

[network]
network_backend = "netavark"
network_config_dir = "$BASE/net"
default_subnet = "10.89.77.0/24"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$BASE/run/libpod"
volume_path = "$BASE/store/volumes"
# no static_dir: conmon's cleanup command does not get it (20 s stalls)

[engine.runtimes]
runc = ["/usr/bin/runc", "/usr/sbin/runc"]
EOF
)
# Rewrite only when it changed: a store must keep one configuration.
if [ "$(cat "$BASE/conf/containers.conf" 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" > "$BASE/conf/containers.conf"
fi
cat > "$BASE/conf/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$BASE/store/storage"
runroot = "$BASE/run/storage"
EOF
cat > "$BASE/conf/registries.conf" <<'EOF'
unqualified-search-registries = []
short-name-mode = "permissive"
EOF
cat > "$BASE/env" <<EOF
# Source this file to use plumbline's private podman configuration.
export CONTAINERS_CONF=$BASE/conf/containers.conf
export CONTAINERS_STORAGE_CONF=$BASE/conf/storage.conf
export CONTAINERS_REGISTRIES_CONF=$BASE/conf/registries.conf
export PLUMBLINE_PODMAN_BASE=$BASE
EOF
# shellcheck disable=SC1091
. "$BASE/env"
step "podman $(podman --version | awk '{print $3}') configured under $BASE"

# A plain Debian base image, tagged debian:bookworm-slim, for the tests'
# non-R custom containers (a registry would provide it; none is reachable).
DEBIAN_RECIPE=bookworm-minbase-1
if podman image exists "localhost/plumbline/debian:$DEBIAN_RECIPE"; then
  step "localhost/plumbline/debian:$DEBIAN_RECIPE present"
else
  step "building localhost/plumbline/debian:$DEBIAN_RECIPE with mmdebstrap (minbase)"
  work=$(mktemp -d "$BASE/tmp/debian.XXXXXX")
  sources=/etc/apt/sources.list.d/debian.sources
  [ -f "$sources" ] || sources=/etc/apt/sources.list
  TMPDIR=$work mmdebstrap --quiet --variant=minbase --include=ca-certificates \
    --customize-hook='chroot "$1" apt-get clean' bookworm "$work/rootfs.tar" "$sources"
  podman import --quiet --change 'CMD ["bash"]' "$work/rootfs.tar" "localhost/plumbline/debian:$DEBIAN_RECIPE" >/dev/null
  rm -rf "$work"
fi
podman tag "localhost/plumbline/debian:$DEBIAN_RECIPE" debian:bookworm-slim

TMPDIR=$BASE/tmp bash scripts/r-base-image.sh
du -shx "$BASE/store" | sed 's/^/install-containers: store /'
step "done"
