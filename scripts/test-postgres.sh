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
# With PLUMBLINE_PG_TCP=0 it listens on the socket only, and the URL names
# the folder: clusters in different folders then never collide (.ci/run
# starts one of its own this way, so that two runs at once, or a run beside
# someone's `make test`, do not share, stop or break each other's).
#
# Safe to run again, and by several runs at once: a lock in the folder
# serialises them, and the cluster found running is used only once it
# accepts connections. Progress goes to stderr. Every test makes its own
# database in the cluster (internal/store/postgres/pgtest), so runs that
# share one do not see each other's data.
set -euo pipefail
dir=${PLUMBLINE_PG_DIR:-/var/tmp/plumbline-test-pg}
port=${PLUMBLINE_PG_PORT:-55432}
tcp=${PLUMBLINE_PG_TCP:-1}

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
# One start at a time per cluster (two runs starting together would both
# initdb, or both start it). The server must not inherit the lock's
# descriptor (it would hold the lock as long as it runs): every command
# below gets 9>&-.
exec 9>>"$dir/.lock"
flock -w 300 9 || { say "another start of the cluster in $dir holds $dir/.lock for over 5 minutes"; exit 1; }
if [ ! -f "$dir/data/PG_VERSION" ]; then
  say "initialising a cluster in $dir/data ($("$bin/postgres" --version))"
  as "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null 9>&-
fi
listen=""
if [ "$tcp" != 0 ]; then listen=127.0.0.1; fi
if ! as "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 9>&-; then
  say "starting it on ${listen:+$listen:$port and }$dir/.s.PGSQL.$port"
  if ! as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 120 \
    -o "-c listen_addresses='$listen' -p $port -k $dir -c max_connections=200 -c fsync=off" start >/dev/null 9>&-; then
    say "PostgreSQL did not start; the end of its log ($dir/log):"
    tail -20 "$dir/log" >&2 || true
    exit 1
  fi
fi
# Running is not yet accepting connections (a cluster still starting, or
# recovering after a crash): wait until it does.
if ! "$bin/pg_isready" -q -h "$dir" -p "$port" -t 120 9>&-; then
  say "the cluster in $dir runs but does not accept connections after 2 minutes; see $dir/log"
  exit 1
fi
if [ "$tcp" != 0 ]; then
  echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
else
  echo "postgres://postgres@/postgres?host=$dir&port=$port&sslmode=disable"
fi
