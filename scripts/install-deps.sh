#!/usr/bin/env bash
# Installs what plumbline's examples and tests need from Debian packages, and
# says what it installs. Safe to run again: it installs only what is missing.
set -euo pipefail

pkgs=(
  r-base-core        # R itself (Rscript)
  r-cran-plumber     # the HTTP server for R models
  r-cran-jsonlite    # JSON in and out of R
  r-cran-randomforest # the iris example's model
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all present (${pkgs[*]})"
  exit 0
fi
echo "install-deps: installing from Debian: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
