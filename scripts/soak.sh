#!/usr/bin/env bash
# Long linearizability soak: the linearizability test's driver (tests/linearizability/lin_test.py
# soak) with every nemesis kind for a long time, on private network namespaces (root needed).
# The history is checked by lincheck in segments while the run goes on: the clients move to
# fresh keys every --segment seconds (disjoint keys are independent), and each closed segment's
# file is checked. At the end: duration, operations (ok/unknown/fail per kind), faults per
# kind, recovery times and every segment's verdict. Exit 0 when every segment is linearizable
# and the cluster stayed healthy; non-zero on any violation or failure (the run directory is
# then kept and its path printed).
#
#   scripts/soak.sh [--minutes 30] [--seed N] [--build-dir DIR] [--segment 60] [-- lin_test args]
#
# --build-dir: a CMake build directory (default build-soak/, RelWithDebInfo, configured here if
# missing); raftnode and kvgateway are (re)built in it first. Anything after `--` goes to
# lin_test.py (e.g. `-- --nodes 5 --clients 8`). RAFTKV_IT_KEEP=1 keeps the run directory.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=30
SEED=""
BUILD_DIR=""
SEGMENT=60
EXTRA=()

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
	exit "${1:-2}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--minutes) MINUTES=${2:?--minutes needs a value}; shift 2 ;;
	--seed) SEED=${2:?--seed needs a value}; shift 2 ;;
	--build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
	--segment) SEGMENT=${2:?--segment needs a value}; shift 2 ;;
	-h | --help) usage 0 ;;
	--) shift; EXTRA=("$@"); break ;;
	*) echo "soak.sh: unknown argument: $1" >&2; usage 2 ;;
	esac
done

if [ -z "$BUILD_DIR" ]; then
	BUILD_DIR="$REPO/build-soak"
fi
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
	echo "soak.sh: configuring $BUILD_DIR (RelWithDebInfo)"
	cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
echo "soak.sh: building raftnode and kvgateway in $BUILD_DIR"
cmake --build "$BUILD_DIR" -j"$(nproc)" --target raftnode kvgateway >/dev/null

export RAFTNODE="$BUILD_DIR/server/node/raftnode"
export KVGATEWAY="$BUILD_DIR/server/gateway/kvgateway"
export RAFTKV_PROTOS="${RAFTKV_PROTOS:-$REPO/protos}"
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

args=(soak --minutes "$MINUTES" --epoch-seconds "$SEGMENT")
if [ -n "$SEED" ]; then
	args+=(--seed "$SEED")
fi
exec /usr/bin/python3 "$REPO/tests/linearizability/lin_test.py" "${args[@]}" "${EXTRA[@]}"
