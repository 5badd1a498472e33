#!/usr/bin/env bash
# Build lincheck (tests/linearizability/lincheck, a porcupine-based linearizability checker for
# client histories) into a project-local tools directory and print its path. Idempotent and cheap:
# the binary is rebuilt only when the module's sources (go.mod, go.sum, *.go) change.
#
#   scripts/install-lincheck.sh                        # -> <repo>/.tools/bin/lincheck
#   RAFTKV_TOOLS_DIR=/somewhere scripts/install-lincheck.sh
#   scripts/install-lincheck.sh --test                 # run the checker's own Go tests
#
# Needs Go (PATH, or /usr/local/go/bin) and, on the first build, the Go module proxy (for
# porcupine). Everything Go writes (module cache, build cache, binary) stays under the tools
# directory (.tools/ is git-ignored). Logs go to stderr; stdout is only the binary's path.
# Exit 2 when go is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${RAFTKV_TOOLS_DIR:-$ROOT/.tools}
SRC="$ROOT/tests/linearizability/lincheck"
BIN="$TOOLS/bin/lincheck"
STAMP="$TOOLS/bin/.lincheck-sources"

# A hash of the module's sources (test files included: harmless, and simpler). LC_ALL=C makes
# the file order, hence the hash, the same on every machine.
sources_hash() {
	(cd "$SRC" && find . -maxdepth 1 -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 |
		LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}
HASH=$(sources_hash)
TEST=0
[ "${1:-}" = "--test" ] && TEST=1

if [ "$TEST" -eq 0 ] && [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$HASH" ]; then
	echo "$BIN"
	exit 0
fi

GO=$(command -v go || true)
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
if [ -z "$GO" ]; then
	echo "install-lincheck: go not found (PATH or /usr/local/go/bin)" >&2
	exit 2
fi

mkdir -p "$TOOLS/bin" "$TOOLS/go" "$TOOLS/go-cache"
if [ "$TEST" -eq 1 ]; then
	cd "$SRC"
	exec env GOPATH="$TOOLS/go" GOCACHE="$TOOLS/go-cache" GOFLAGS="-modcacherw" \
		GO111MODULE=on CGO_ENABLED=0 GOWORK=off "$GO" test -count=1 ./...
fi
echo "install-lincheck: building $SRC into $BIN" >&2
# Build to a temporary name and rename, so an interrupted build never leaves a broken binary
# behind a valid stamp. GOWORK=off: ignore any go.work above the module.
(cd "$SRC" && env GOPATH="$TOOLS/go" GOCACHE="$TOOLS/go-cache" GOFLAGS="-modcacherw" \
	GO111MODULE=on CGO_ENABLED=0 GOWORK=off \
	"$GO" build -trimpath -o "$BIN.tmp" .) >&2
mv -f "$BIN.tmp" "$BIN"
echo "$HASH" >"$STAMP"
echo "$BIN"
