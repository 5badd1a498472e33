#!/usr/bin/env bash
# Build tests/helm/validate (validate-k8s: strict validation of Kubernetes manifests against
# the k8s.io/api types) into the project-local tools directory and print its path.
# Idempotent: rebuilt only when its sources (main.go, go.mod, go.sum) change.
#
#   tests/helm/build-validator.sh          # -> <repo>/.tools/bin/validate-k8s
#
# Needs Go (PATH, or /usr/local/go/bin) and the Go module proxy (modules pinned in go.mod /
# go.sum). Module and build caches stay under the tools directory. Exit 2 when go is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SRC="$ROOT/tests/helm/validate"
TOOLS=${RAFTKV_TOOLS_DIR:-$ROOT/.tools}
BIN="$TOOLS/bin/validate-k8s"
STAMP="$TOOLS/bin/.validate-k8s-sources"

SUM=$(cat "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -d' ' -f1)
if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$SUM" ]; then
	echo "$BIN"
	exit 0
fi

GO=$(command -v go || true)
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
if [ -z "$GO" ]; then
	echo "build-validator: go not found (PATH or /usr/local/go/bin)" >&2
	exit 2
fi

mkdir -p "$TOOLS/bin" "$TOOLS/go" "$TOOLS/go-cache"
echo "build-validator: go build $SRC -> $BIN" >&2
(cd "$SRC" && env GOPATH="$TOOLS/go" GOCACHE="$TOOLS/go-cache" GOFLAGS="-modcacherw -mod=readonly" \
	GO111MODULE=on CGO_ENABLED=0 GOTOOLCHAIN=local \
	"$GO" build -trimpath -o "$BIN" . >&2)
echo "$SUM" >"$STAMP"
echo "$BIN"
