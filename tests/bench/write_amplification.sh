#!/usr/bin/env bash
# Disk written per byte of new commands: a 3-raftnode cluster (RelWithDebInfo, build/) holding
# N keys (default a million, 16 B keys, 128 B values, loaded first with kvload -populate)
# takes puts at c=64 through its gateway for D seconds (default 600); the raftnodes' bytes
# written to storage (/proc/<pid>/io write_bytes, the snapshotter included: a snapshot's
# child only writes to a pipe) are divided by the bytes of keys and values put.
#
#   tests/bench/write_amplification.sh [N] [D]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=${1:-1000000}
D=${2:-600}
BENCH=${BENCH_DIR:-$ROOT/../shared/bench}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/raftkv-wamp.XXXXXX")
KVLOAD=$BUILD_DIR/kvload
export RAFTKV_CLUSTER_DIR=$WORK/raftkv RAFTKV_CLUSTER_PORT=${RAFTKV_CLUSTER_PORT:-7400}
GW=127.0.0.1:$RAFTKV_CLUSTER_PORT

cleanup() {
	"$ROOT/scripts/cluster.sh" stop >/dev/null 2>&1 || true
	[ "${KEEP:-0}" = 1 ] && echo "kept: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$BUILD_DIR/server/node/raftnode" ] ||
	{ cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
		cmake --build "$BUILD_DIR" -j2 >/dev/null; }
[ -x "$KVLOAD" ] || go -C "$BENCH/kvload" build -o "$KVLOAD"

"$ROOT/scripts/cluster.sh" start >"$WORK/cluster.out" 2>&1 &
for _ in $(seq 1 300); do
	[ -f "$RAFTKV_CLUSTER_DIR/ngw.pid" ] && break
	sleep 0.2
done
sleep 2
pids=$(cat "$RAFTKV_CLUSTER_DIR"/n[123].pid)

written() { # bytes the raftnodes wrote to storage so far
	local p total=0
	for p in $pids; do
		total=$((total + $(awk '/^write_bytes/ {print $2}' "/proc/$p/io")))
	done
	echo "$total"
}

"$KVLOAD" -system raftkv -target "$GW" -mode put -c 1 -d 1s -warmup 0s -populate "$N" \
	-keys "$N" >/dev/null
w0=$(written)
out=$("$KVLOAD" -system raftkv -target "$GW" -mode put -c 64 -d "${D}s" -warmup 0s -keys "$N")
w1=$(written)
ops=$(echo "$out" | sed 's/.*"ops":\([0-9]*\).*/\1/')
snaps=$(grep -h "stored:" "$RAFTKV_CLUSTER_DIR"/n[123].log | wc -l)
echo "puts: $out"
awk -v w="$((w1 - w0))" -v ops="$ops" -v d="$D" -v n="$N" -v s="$snaps" 'BEGIN {
	cmd = ops * (16 + 128)
	printf "%d keys, %d s of puts at c=64: %d puts, %.1f MiB of keys and values; the 3 " \
	       "raftnodes wrote %.1f MiB (snapshots stored since the start, all members: %d): " \
	       "%.2f bytes per byte of command per member\n",
	       n, d, ops, cmd / 1048576, w / 1048576, s, w / 3 / cmd }'
