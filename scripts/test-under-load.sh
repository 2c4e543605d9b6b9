#!/usr/bin/env bash
# `make test` RUNS times in a row (default 3) while `stress -c LOAD` (default
# 2, one busy process per core here) runs: a flaky test is a defect, and this
# is how one shows the suite holds on a loaded machine. Every run is uncached
# (-count=1); the first failure stops the loop. Run after .ci/run's installers
# (or .ci/run itself) have run once on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
load=${LOAD:-2}
command -v stress >/dev/null || { echo "stress is not installed: apt-get install stress" >&2; exit 1; }
stress -c "$load" >/dev/null 2>&1 &
stress_pid=$!
trap 'kill "$stress_pid" 2>/dev/null || true' EXIT
for i in $(seq "$runs"); do
  start=$(date +%s)
  echo "== run $i of $runs under stress -c $load: $(date -u +%FT%TZ)"
  if ! bash scripts/with-test-env.sh make test TESTFLAGS="${TESTFLAGS:--count=1 -timeout 45m}"; then
    echo "== run $i FAILED after $(( $(date +%s) - start )) s" >&2
    exit 1
  fi
  echo "== run $i passed in $(( $(date +%s) - start )) s (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
done
echo "== $runs runs in a row passed under stress -c $load"
