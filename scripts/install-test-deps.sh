#!/usr/bin/env bash
# Installs what the tests need beyond scripts/install-deps.sh: Debian's
# Chromium, which the studio's browser test (test/browser) drives headless
# through chromedp at /usr/bin/chromium, and its WebDriver (chromium-driver);
# the DejaVu fonts, so that screenshots look the same on every machine;
# nginx, which the benchmark harness's smoke test compares the gateway with;
# wrk and h2load (nghttp2-client), its closed-loop load generators over
# HTTP/1.1 and HTTP/2 (the gateway profile needs wrk);
# readr, which plumber's csv serializer needs (the lean R runtime's
# differential tests use it); ranger, the benchmarks' slower model; R's
# httr2, which the test that runs up's printed R snippet uses; and NSS's
# certutil, which plumbline trust drives (its test checks Chromium then
# trusts the local CA).
# Says what it installs. Safe to run again: it installs only what is missing.
set -euo pipefail

pkgs=(
  chromium         # the browser the studio test drives (/usr/bin/chromium)
  chromium-driver  # its WebDriver, chromedriver
  fonts-dejavu-core # the fonts the studio's screenshots are drawn with
  nginx-light      # the benchmark harness compares the gateway with nginx
  wrk              # its HTTP/1.1 closed-loop generator; the gateway profile runs under it
  nghttp2-client   # h2load, its HTTP/2 closed-loop generator
  r-cran-readr     # plumber's @serializer csv, in the lean runtime's differential tests
  r-cran-ranger    # the benchmarks' slower model (bench/testdata/r-ranger)
  r-cran-httr2     # the R snippet up prints is run verbatim by a test
  libnss3-tools    # certutil, for plumbline trust
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: all present (${pkgs[*]})"
  exit 0
fi
echo "install-test-deps: installing from Debian: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-test-deps: done ($(/usr/bin/chromium --version 2>/dev/null || echo 'chromium installed'))"
