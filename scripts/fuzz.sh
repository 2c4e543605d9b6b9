#!/usr/bin/env bash
# Runs every native Go fuzz target of the module for FUZZTIME each (default
# 5s): a bounded pass over the parsers and header handling on every CI run,
# on top of their seed corpora, which `make test` runs as plain tests.
# Targets are found with `go test -list`, so a new Fuzz function is picked up
# without editing this script. A failure leaves the crashing input under the
# package's testdata/fuzz/ and stops the script with go test's output.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}
pkgs=$($GO list ./...)
n=0
start=$(date +%s)
for pkg in $pkgs; do
  targets=$($GO test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
  for t in $targets; do
    echo "fuzz: $pkg $t for $FUZZTIME"
    $GO test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/plumbline-fuzz.$$ 2>&1 || {
      cat /tmp/plumbline-fuzz.$$; rm -f /tmp/plumbline-fuzz.$$; exit 1; }
    grep -E 'elapsed|new interesting|PASS|ok' /tmp/plumbline-fuzz.$$ | tail -2 | sed 's/^/  /'
    n=$((n + 1))
  done
done
rm -f /tmp/plumbline-fuzz.$$
echo "fuzz: $n targets, ${FUZZTIME} each, $(( $(date +%s) - start ))s in all"
