#!/usr/bin/env bash
# Install grpcurl (the gRPC command-line client) into a project-local tools directory and
# print its path. Idempotent: an existing binary of the wanted version is reused.
#
#   scripts/install-grpcurl.sh            # -> <repo>/.tools/bin/grpcurl
#   GRPCURL_VERSION=v1.9.3 RAFTKV_TOOLS_DIR=/somewhere scripts/install-grpcurl.sh
#
# Needs Go (PATH, or /usr/local/go/bin) and the Go module proxy. Everything Go writes (module
# cache, build cache, binary) stays under the tools directory (.tools/ is git-ignored), so it
# works on a fresh machine as root and touches nothing else. Exit 2 when go is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${RAFTKV_TOOLS_DIR:-$ROOT/.tools}
VERSION=${GRPCURL_VERSION:-v1.9.3}
BIN="$TOOLS/bin/grpcurl"
STAMP="$TOOLS/bin/.grpcurl-version"

if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$VERSION" ]; then
	echo "$BIN"
	exit 0
fi

GO=$(command -v go || true)
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
if [ -z "$GO" ]; then
	echo "install-grpcurl: go not found (PATH or /usr/local/go/bin)" >&2
	exit 2
fi

mkdir -p "$TOOLS/bin" "$TOOLS/go" "$TOOLS/go-cache"
echo "install-grpcurl: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$VERSION into $TOOLS/bin" >&2
env GOPATH="$TOOLS/go" GOCACHE="$TOOLS/go-cache" GOBIN="$TOOLS/bin" GOFLAGS="-modcacherw" \
	GO111MODULE=on CGO_ENABLED=0 \
	"$GO" install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$VERSION" >&2
"$BIN" -version >&2
echo "$VERSION" >"$STAMP"
echo "$BIN"
