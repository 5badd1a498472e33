#!/usr/bin/env bash
# Install helm (the Kubernetes package manager, v3) into a project-local tools directory and
# print its path. Idempotent: an existing binary of the wanted version is reused.
#
#   scripts/install-helm.sh               # -> <repo>/.tools/bin/helm
#   HELM_VERSION=v3.22.0 RAFTKV_TOOLS_DIR=/somewhere scripts/install-helm.sh
#
# Needs Go (PATH, or /usr/local/go/bin) and the Go module proxy: helm is built from source with
# `go install helm.sh/helm/v3/cmd/helm@VERSION` (no prebuilt download). Everything Go writes
# (module cache, build cache, binary) stays under the tools directory (.tools/ is git-ignored),
# so it works on a fresh machine as root and touches nothing else. The first run downloads
# the modules and compiles helm: a few minutes on 2 cores. Exit 2 when go is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${RAFTKV_TOOLS_DIR:-$ROOT/.tools}
VERSION=${HELM_VERSION:-v3.22.0}
# The Kubernetes version helm assumes without a cluster (`helm template`, `helm lint`): helm's
# own Makefile derives it from its client-go module (v0.37 -> 1.37 for v3.22.0); a plain
# `go install` would leave helm's fallback of 1.20, too old for the chart's kubeVersion.
KUBE_VERSION=${HELM_KUBE_VERSION:-1.37}
BIN="$TOOLS/bin/helm"
STAMP="$TOOLS/bin/.helm-version"

if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$VERSION kube $KUBE_VERSION" ]; then
	echo "$BIN"
	exit 0
fi

GO=$(command -v go || true)
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
if [ -z "$GO" ]; then
	echo "install-helm: go not found (PATH or /usr/local/go/bin)" >&2
	exit 2
fi

mkdir -p "$TOOLS/bin" "$TOOLS/go" "$TOOLS/go-cache"
echo "install-helm: go install helm.sh/helm/v3/cmd/helm@$VERSION into $TOOLS/bin" >&2
# The linker variables are the ones helm's Makefile sets (its version, the default Kubernetes
# version of `helm template` and of lint's deprecation check).
KMAJ=${KUBE_VERSION%%.*}
KMIN=${KUBE_VERSION#*.}
LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$VERSION"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
	LDFLAGS="$LDFLAGS -X $pkg.k8sVersionMajor=$KMAJ -X $pkg.k8sVersionMinor=$KMIN"
done
env GOPATH="$TOOLS/go" GOCACHE="$TOOLS/go-cache" GOBIN="$TOOLS/bin" GOFLAGS="-modcacherw" \
	GO111MODULE=on CGO_ENABLED=0 \
	"$GO" install -trimpath -ldflags "$LDFLAGS" "helm.sh/helm/v3/cmd/helm@$VERSION" >&2
"$BIN" version --short >&2
echo "$VERSION kube $KUBE_VERSION" >"$STAMP"
echo "$BIN"
