#!/usr/bin/env bash
# Build the container images raftkv/raftnode:<tag> and raftkv/kvgateway:<tag> from the
# repository's Dockerfile. The tag is helm/raftkv/Chart.yaml's appVersion when that file
# exists (so the chart's default image tag always names an image built here), else 0.6.0.
#
# First makes the Debian base images locally when they are missing (scripts/docker-base.sh:
# debootstrap + docker import; this machine has no registry). Where a registry is reachable
# the Dockerfile needs nothing of this: `docker build --target raftnode .` pulls the bases.
#
# Usage: scripts/build-images.sh [extra docker build arguments, e.g. --no-cache]
# Environment:
#   RAFTKV_IMAGE_TAG      override the tag
#   RAFTKV_IMAGE_REPO     image name prefix (default raftkv)
#   RAFTKV_SKIP_BASE=1    do not run scripts/docker-base.sh (bases come from a registry)
# Prints the tag line "images: <raftnode image> <kvgateway image>" and the image sizes.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

say() { echo "build-images: $*"; }

command -v docker >/dev/null 2>&1 || { echo "build-images: docker is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "build-images: no Docker engine answers (docker info)" >&2; exit 1; }

tag=${RAFTKV_IMAGE_TAG:-}
if [ -z "$tag" ] && [ -f helm/raftkv/Chart.yaml ]; then
	tag=$(sed -n 's/^appVersion:[[:space:]]*["'\'']\{0,1\}\([^"'\''[:space:]]*\).*$/\1/p' helm/raftkv/Chart.yaml | head -n 1)
fi
tag=${tag:-0.6.0}
prefix=${RAFTKV_IMAGE_REPO:-raftkv}

if [ "${RAFTKV_SKIP_BASE:-0}" = 0 ]; then
	"$REPO/scripts/docker-base.sh"
fi

build() {
	local target=$1 image=$2
	shift 2
	say "docker build --target $target -t $image"
	local t0=$SECONDS
	docker build --target "$target" --build-arg VERSION="$tag" -t "$image" "$@" "$REPO"
	say "$image built in $((SECONDS - t0)) s"
}

# raftnode first: kvgateway then reuses every shared layer (build stage, runtime stage).
build raftnode "$prefix/raftnode:$tag" "$@"
build kvgateway "$prefix/kvgateway:$tag" "$@"

say "images: $prefix/raftnode:$tag $prefix/kvgateway:$tag"
for image in "$prefix/raftnode:$tag" "$prefix/kvgateway:$tag" debian:bookworm-slim; do
	size=$(docker image inspect --format '{{.Size}}' "$image")
	printf 'build-images: %-28s %6.1f MB\n' "$image" "$(echo "$size" | awk '{print $1 / 1000000}')"
done
