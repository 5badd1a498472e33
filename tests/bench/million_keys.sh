#!/usr/bin/env bash
# Load N distinct keys (16 B keys, 128 B values; default a million) into raftkv through its
# gateway and into etcd 3.4 (3 members, to its leader), one after the other on this machine,
# with the same client: kvload's -populate (64 writers, 5 s deadline per put; it stops at the
# first failed put). Then, on the loaded store, put and linearizable get at c=256 for 10 s.
# Prints per system: whether the load finished, its duration and rate, leader changes (raftkv:
# the members' terms before and after), the members' RSS, the figures of the c=256 runs, and
# the raftnodes' largest snapshot pause ("forked its writer in N ms") and snapshot sizes.
# raftkv then: a follower restarted (seconds until it has applied all that was committed), and
# a follower wiped (its data removed; seconds until caught up by snapshot) while puts at c=64
# go on, with the same puts just before for comparison (p99).
#
#   tests/bench/million_keys.sh [N]          # RelWithDebInfo build in build/ (made if missing)
#   SYSTEMS=raftkv tests/bench/million_keys.sh 200000
#
# Needs etcd-server (Debian) for the etcd half; the Go module proxy to build kvload once.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=${1:-1000000}
SYSTEMS=${SYSTEMS:-"raftkv etcd"}
BENCH=${BENCH_DIR:-$ROOT/../shared/bench}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/raftkv-million.XXXXXX")
KVLOAD=$BUILD_DIR/kvload
export RAFTKV_CLUSTER_DIR=$WORK/raftkv RAFTKV_CLUSTER_PORT=${RAFTKV_CLUSTER_PORT:-7300}
GW=127.0.0.1:$RAFTKV_CLUSTER_PORT

cleanup() {
	"$ROOT/scripts/cluster.sh" stop >/dev/null 2>&1 || true
	BENCH_WORK=$WORK/etcd "$BENCH/stop_etcd3.sh" >/dev/null 2>&1 || true
	[ "${KEEP:-0}" = 1 ] && echo "kept: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$BUILD_DIR/server/node/raftnode" ] || BUILD_TYPE=RelWithDebInfo BUILD_DIR=$BUILD_DIR \
	bash -c "cmake -S '$ROOT' -B '$BUILD_DIR' -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
		 cmake --build '$BUILD_DIR' -j2 >/dev/null"
[ -x "$KVLOAD" ] || go -C "$BENCH/kvload" build -o "$KVLOAD"

rss_mib() { # summed RSS of the pids given, in MiB
	local total=0 p
	for p in "$@"; do
		total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
	done
	echo $((total / 1024))
}

populate() { # system target pids: load N keys, print how it went
	local sys=$1 target=$2 pids=$3 t0 t1 rc
	t0=$(date +%s.%N)
	set +e
	"$KVLOAD" -system "$sys" -target "$target" -mode put -c 1 -d 1s -warmup 0s \
		-populate "$N" -keys "$N" -timeout 5s -label populate >/dev/null 2>"$WORK/$sys.populate.err"
	rc=$?
	set -e
	t1=$(date +%s.%N)
	awk -v s="$sys" -v n="$N" -v a="$t0" -v b="$t1" -v rc="$rc" 'BEGIN {
		printf "%s: load of %d keys %s in %.0f s (%.0f puts/s)\n", s, n,
		       rc == 0 ? "finished" : "FAILED", b - a, n / (b - a) }'
	[ "$rc" = 0 ] || sed 's/^/  /' "$WORK/$sys.populate.err" | head -3
	echo "$sys: RSS of the members after the load: $(rss_mib ${pids//,/ }) MiB (summed)"
	local mode
	for mode in put get; do
		echo "$sys: $mode c=256 at $N keys: $("$KVLOAD" -system "$sys" -target "$target" \
			-mode "$mode" -c 256 -d 10s -keys "$N" -pids "$pids" -label "$mode")"
	done
}

terms() { # NAME=TERM of every raftnode (kvctl status asks each endpoint itself)
	local eps="127.0.0.1:$((RAFTKV_CLUSTER_PORT + 1)),127.0.0.1:$((RAFTKV_CLUSTER_PORT + 2))"
	"$BUILD_DIR/client/kvctl" --endpoints "$eps,127.0.0.1:$((RAFTKV_CLUSTER_PORT + 3))" status |
		awk '$1 ~ /^127/ { printf " %s=%s", $3, $5 }'
}

KVCTL=$BUILD_DIR/client/kvctl
ep() { echo "127.0.0.1:$((RAFTKV_CLUSTER_PORT + $1))"; }
MEMBERS="n1=$(ep 1),n2=$(ep 2),n3=$(ep 3)"
row() { # member i's kvctl status row: ENDPOINT ID NAME ROLE TERM LEADER COMMIT APPLIED ...
	"$KVCTL" --endpoints "$(ep "$1")" status 2>/dev/null | awk '$1 ~ /^127/'
}
start_member() {
	"$BUILD_DIR/server/node/raftnode" --name "n$1" --data-dir "$RAFTKV_CLUSTER_DIR/n$1" \
		--initial-cluster "$MEMBERS" >>"$RAFTKV_CLUSTER_DIR/n$1.log" 2>&1 &
	echo $! >"$RAFTKV_CLUSTER_DIR/n$1.pid"
}
leader_commit() {
	local i
	for i in 1 2 3; do row "$i"; done | awk '$4 == "LEADER" { print $7 }'
}
# Seconds until member $1 has applied everything committed now (bounded: 300 s).
time_to_catch_up() {
	local i=$1 want t0 a
	want=$(leader_commit)
	t0=$(date +%s.%N)
	for _ in $(seq 1 3000); do
		a=$(row "$i" | awk '{ print $8 }')
		[ -n "$a" ] && [ "$a" -ge "$want" ] && break
		sleep 0.1
	done
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

# A follower restarted (SIGTERM, start), then one wiped (SIGKILL, data removed, start) while
# puts go on at c=64, against the same puts before.
follower_phases() {
	local f="" i pid
	for i in 1 2 3; do
		[ "$(row "$i" | awk '{ print $4 }')" = FOLLOWER ] && f=$i && break
	done
	pid=$(cat "$RAFTKV_CLUSTER_DIR/n$f.pid")
	kill -TERM "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	start_member "$f"
	echo "raftkv: follower n$f restarted at $N keys: applied everything committed after $(time_to_catch_up "$f") s"
	echo "raftkv: put c=64 before the wipe: $("$KVLOAD" -system raftkv -target "$GW" -mode put -c 64 -d 10s -keys "$N" -label before-wipe)"
	pid=$(cat "$RAFTKV_CLUSTER_DIR/n$f.pid")
	kill -KILL "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	rm -rf "${RAFTKV_CLUSTER_DIR:?}/n$f"
	"$KVLOAD" -system raftkv -target "$GW" -mode put -c 64 -d 20s -warmup 0s -keys "$N" \
		-label during-wipe >"$WORK/during.json" 2>&1 &
	local load=$!
	start_member "$f"
	echo "raftkv: follower n$f wiped at $N keys: caught up (by snapshot) after $(time_to_catch_up "$f") s"
	wait "$load" || true
	echo "raftkv: put c=64 while it caught up: $(cat "$WORK/during.json")"
}

for sys in $SYSTEMS; do
	case $sys in
	raftkv)
		"$ROOT/scripts/cluster.sh" start >"$WORK/cluster.out" 2>&1 &
		watcher=$!
		for _ in $(seq 1 300); do
			grep -q "gateway" "$WORK/cluster.out" 2>/dev/null && [ -f "$RAFTKV_CLUSTER_DIR/ngw.pid" ] && break
			sleep 0.2
		done
		sleep 2
		pids=$(cat "$RAFTKV_CLUSTER_DIR"/n[123].pid | paste -sd,)
		# Members run on without the script's watch (it stops all when one exits, and the
		# follower phases stop one); `cluster.sh stop` still finds them by their pid files.
		kill -KILL "$watcher" 2>/dev/null || true
		echo "raftkv: terms before:$(terms)"
		populate raftkv "$GW" "$pids,$(cat "$RAFTKV_CLUSTER_DIR/ngw.pid")"
		echo "raftkv: terms after: $(terms)"
		follower_phases
		grep -ho "forked its writer in [0-9]* ms" "$RAFTKV_CLUSTER_DIR"/n[123].log |
			awk '{ if ($5 > m) m = $5 } END { printf "raftkv: snapshots: %d taken, longest raft-loop pause %d ms\n", NR, m }'
		grep -ho "stored: [0-9.]* MiB in [0-9]* ms" "$RAFTKV_CLUSTER_DIR/n1.log" | tail -3 |
			sed 's/^/raftkv: n1 snapshot /'
		"$ROOT/scripts/cluster.sh" stop >/dev/null
		;;
	etcd)
		BENCH_WORK=$WORK/etcd "$BENCH/start_etcd3.sh" >/dev/null
		sleep 3
		pids=$(cat "$WORK"/etcd/pids/m[123].pid | paste -sd,)
		populate etcd 127.0.0.1:12379 "$pids"
		BENCH_WORK=$WORK/etcd "$BENCH/stop_etcd3.sh" >/dev/null
		;;
	esac
done
