#!/usr/bin/env bash
# Starts (or stops) a private PostgreSQL cluster for plumbline's tests and
# prints its URL on stdout; .ci/run exports it as PLUMBLINE_TEST_POSTGRES.
#
#   scripts/test-postgres.sh         start (or reuse) the cluster, print its URL
#   scripts/test-postgres.sh stop    stop it
#
# The cluster is Debian's PostgreSQL (installed if missing), initialised in
# $PLUMBLINE_PG_DIR (default /var/tmp/plumbline-test-pg) and listening only
# on 127.0.0.1:$PLUMBLINE_PG_PORT (default 55432) and a socket in that
# folder: no systemd, no cluster of the machine's own is touched. Trust
# authentication, loopback only: it holds test databases and nothing else.
# Safe to run again. Progress goes to stderr.
set -euo pipefail
dir=${PLUMBLINE_PG_DIR:-/var/tmp/plumbline-test-pg}
port=${PLUMBLINE_PG_PORT:-55432}

say() { echo "test-postgres: $*" >&2; }

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

if [ -z "$(bindir)" ] || [ ! -x "$(bindir)/initdb" ]; then
  say "installing PostgreSQL from Debian (postgresql)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get -o DPkg::Lock::Timeout=900 update -qq
  $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends postgresql >/dev/null
fi
bin=$(bindir)

# as runs a command as the cluster's owner: postgres when we are root
# (PostgreSQL refuses to run as root), else ourselves.
as() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ "${1:-start}" = stop ]; then
  if [ -f "$dir/data/postmaster.pid" ]; then
    as "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  fi
  exit 0
fi

mkdir -p "$dir"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
chmod 700 "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
  say "initialising a cluster in $dir/data ($("$bin/postgres" --version))"
  as "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
fi
if ! as "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  say "starting it on 127.0.0.1:$port"
  as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off" start >/dev/null
fi
echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
