#!/usr/bin/env bash
# Builds the R + plumber base image from Debian packages, for machines that
# cannot pull rstudio/plumber from a registry, and tags it
# rstudio/plumber:latest so that a Dockerfile starting
# `FROM rstudio/plumber:latest` (the seed's docker-context) builds locally.
#
#   bash scripts/r-base-image.sh                  # podman (or docker) on this machine
#   CONTAINER_CLI=docker bash scripts/r-base-image.sh
#
# Needs root (mmdebstrap) and a container CLI. The root file system is made
# with mmdebstrap from this machine's own apt sources (so a mirror or proxy
# configured for apt is used), then imported as an image. Like rstudio/plumber,
# the image's ENTRYPOINT plumbs the file given as its last argument on
# 0.0.0.0:8000, and its CMD is one of plumber's examples.
#
# The image is tagged plumbline/r-base:$RECIPE; when that tag exists nothing
# is rebuilt. Bump RECIPE when the package list or the image settings change.
set -euo pipefail

RECIPE=bookworm-1
IMAGE=localhost/plumbline/r-base:$RECIPE
PACKAGES=ca-certificates,r-base-core,r-cran-plumber,r-cran-jsonlite
CLI=${CONTAINER_CLI:-$(command -v podman || command -v docker || true)}
if [ -z "$CLI" ]; then
  echo "r-base-image: neither podman nor docker is installed; install one (apt-get install podman)" >&2
  exit 1
fi
T0=$(date +%s)
step() { echo "r-base-image [+$(( $(date +%s) - T0 ))s] $*"; }

if "$CLI" image inspect "$IMAGE" >/dev/null 2>&1; then
  step "$IMAGE present (recipe $RECIPE)"
else
  command -v mmdebstrap >/dev/null || { echo "r-base-image: mmdebstrap is needed: apt-get install mmdebstrap" >&2; exit 1; }
  sources=/etc/apt/sources.list.d/debian.sources
  [ -f "$sources" ] || sources=/etc/apt/sources.list
  work=$(mktemp -d "${TMPDIR:-/tmp}/r-base.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  step "building the root file system with mmdebstrap (bookworm: ${PACKAGES//,/ }) from $sources"
  TMPDIR=$work mmdebstrap --quiet --variant=apt --include="$PACKAGES" \
    --customize-hook='chroot "$1" apt-get clean' \
    bookworm "$work/rootfs.tar" "$sources"
  step "importing it as $IMAGE"
  entry='pr <- plumber::plumb(rev(commandArgs())[1]); args <- list(host = "0.0.0.0", port = 8000); if (packageVersion("plumber") >= "1.0.0") { pr$setDocs(TRUE) } else { args$swagger <- TRUE }; do.call(pr$run, args)'
  quiet=(); [ "$(basename "$CLI")" = podman ] && quiet=(--quiet)
  "$CLI" import "${quiet[@]}" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'EXPOSE 8000' \
    --change "ENTRYPOINT [\"R\", \"-e\", \"${entry//\"/\\\"}\"]" \
    --change 'CMD ["/usr/lib/R/site-library/plumber/plumber/04-mean-sum/plumber.R"]' \
    "$work/rootfs.tar" "$IMAGE" >/dev/null
fi
"$CLI" tag "$IMAGE" rstudio/plumber:latest
step "tagged rstudio/plumber:latest ($("$CLI" image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1000000}'))"
