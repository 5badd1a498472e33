#!/usr/bin/env bash
# Disk written per byte of new commands, raftkv beside etcd 3.4 with the same client: a
# 3-member cluster holding N keys (default a million, 16 B keys, 128 B values, loaded first
# with kvload -populate) takes puts at c=64 for D seconds (default 600; raftkv through its
# gateway, etcd to one member); the members' bytes written to storage (/proc/<pid>/io
# write_bytes; for raftkv the snapshotter is included: a snapshot's child only writes to a
# pipe) are divided by the bytes of keys and values put, per member.
#
#   tests/bench/write_amplification.sh [N] [D]
#   SYSTEMS=raftkv KEEP=1 tests/bench/write_amplification.sh 200000 120
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=${1:-1000000}
D=${2:-600}
SYSTEMS=${SYSTEMS:-"raftkv etcd"}
BENCH=${BENCH_DIR:-$ROOT/../shared/bench}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/raftkv-wamp.XXXXXX")
KVLOAD=$BUILD_DIR/kvload
export RAFTKV_CLUSTER_DIR=$WORK/raftkv RAFTKV_CLUSTER_PORT=${RAFTKV_CLUSTER_PORT:-7400}

cleanup() {
	"$ROOT/scripts/cluster.sh" stop >/dev/null 2>&1 || true
	BENCH_WORK=$WORK/etcd "$BENCH/stop_etcd3.sh" >/dev/null 2>&1 || true
	[ "${KEEP:-0}" = 1 ] && echo "kept: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$BUILD_DIR/server/node/raftnode" ] ||
	{ cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
		cmake --build "$BUILD_DIR" -j2 >/dev/null; }
[ -x "$KVLOAD" ] || go -C "$BENCH/kvload" build -o "$KVLOAD"

written() { # bytes the processes given wrote to storage so far
	local p total=0
	for p in "$@"; do
		total=$((total + $(awk '/^write_bytes/ {print $2}' "/proc/$p/io")))
	done
	echo "$total"
}

measure() { # system target pids...: load N keys, put for D s, print the figures
	local sys=$1 target=$2 w0 w1 out ops
	shift 2
	"$KVLOAD" -system "$sys" -target "$target" -mode put -c 1 -d 1s -warmup 0s \
		-populate "$N" -keys "$N" >/dev/null
	w0=$(written "$@")
	out=$("$KVLOAD" -system "$sys" -target "$target" -mode put -c 64 -d "${D}s" -warmup 0s \
		-keys "$N")
	w1=$(written "$@")
	ops=$(echo "$out" | sed 's/.*"ops":\([0-9]*\).*/\1/')
	echo "$sys: puts: $out"
	awk -v sys="$sys" -v w="$((w1 - w0))" -v ops="$ops" -v d="$D" -v n="$N" 'BEGIN {
		cmd = ops * (16 + 128)
		printf "%s: %d keys, %d s of puts at c=64: %d puts, %.1f MiB of keys and values; " \
		       "the 3 members wrote %.1f MiB: %.2f bytes per byte of command per member\n",
		       sys, n, d, ops, cmd / 1048576, w / 1048576, w / 3 / cmd }'
}

for sys in $SYSTEMS; do
	case $sys in
	raftkv)
		"$ROOT/scripts/cluster.sh" start >"$WORK/cluster.out" 2>&1 &
		for _ in $(seq 1 300); do
			[ -f "$RAFTKV_CLUSTER_DIR/ngw.pid" ] && break
			sleep 0.2
		done
		sleep 2
		# shellcheck disable=SC2046
		measure raftkv "127.0.0.1:$RAFTKV_CLUSTER_PORT" $(cat "$RAFTKV_CLUSTER_DIR"/n[123].pid)
		echo "raftkv: snapshots stored since the start, all members:" \
			"$(grep -h "stored:" "$RAFTKV_CLUSTER_DIR"/n[123].log | wc -l)"
		"$ROOT/scripts/cluster.sh" stop >/dev/null 2>&1 || true
		;;
	etcd)
		BENCH_WORK=$WORK/etcd "$BENCH/start_etcd3.sh" >/dev/null
		sleep 2
		# shellcheck disable=SC2046
		measure etcd 127.0.0.1:12379 $(cat "$WORK"/etcd/pids/m[123].pid)
		BENCH_WORK=$WORK/etcd "$BENCH/stop_etcd3.sh" >/dev/null
		;;
	*) echo "unknown system $sys" >&2 && exit 2 ;;
	esac
done
