#!/usr/bin/env bash
# Run a command ("$@", e.g. `make test`) with everything the tests use
# started and exported, as CI does: the Docker Engine API served by podman on
# a private socket, a PostgreSQL cluster of this run's own, the Kubernetes
# binaries, and PLUMBLINE_CI=1 (a test that would skip fails instead).
# Assumes the installers have run (.ci/run runs them first).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. /var/cache/plumbline-ci/podman/env
sock="$PLUMBLINE_PODMAN_BASE/run/ci-$$.sock"
podman system service --time=0 "unix://$sock" >"$PLUMBLINE_PODMAN_BASE/run/ci-$$.log" 2>&1 &
podman_pid=$!
# A PostgreSQL cluster of this run's own (Debian's, on a socket in its own
# folder, no TCP port) for the PostgreSQL store's tests and the
# multi-replica end-to-end test: another run at once, or someone's
# `make test` on the shared cluster, neither uses nor stops it.
PLUMBLINE_PG_DIR=$(mktemp -d /var/tmp/plumbline-ci-pg.XXXXXX)
export PLUMBLINE_PG_DIR PLUMBLINE_PG_TCP=0
trap 'kill "$podman_pid" 2>/dev/null || true; rm -f "$sock"; bash scripts/test-postgres.sh stop; rm -rf "$PLUMBLINE_PG_DIR"' EXIT
PLUMBLINE_TEST_POSTGRES=$(bash scripts/test-postgres.sh)
export PLUMBLINE_TEST_POSTGRES
for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.1; done
export PLUMBLINE_TEST_DOCKER_HOST="unix://$sock"
# Kubernetes v1.33 built from the Go module proxy (cached under
# /var/cache/plumbline-ci/k8s-<version>), helm, containerd, runc, etcd and
# the CNI plugins; the tests start their own cluster inside a network
# namespace (internal/k8stest).
bash scripts/install-kubernetes.sh
# shellcheck disable=SC1091
. /var/cache/plumbline-ci/k8s.env
export PLUMBLINE_CI=1
"$@"
