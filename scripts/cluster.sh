#!/usr/bin/env bash
# A local raftkv cluster on loopback: 3 raftnodes and a kvgateway in front of them.
#
#   scripts/cluster.sh [start]   install dependencies and build if needed, start the cluster in
#                                the foreground, print the endpoints; Ctrl-C stops it cleanly
#   scripts/cluster.sh stop      stop a cluster started from another terminal (SIGTERM)
#   scripts/cluster.sh status    show which members run
#
# Data lives in $RAFTKV_CLUSTER_DIR (default: .cluster/ in the repository) and survives
# restarts: running `start` again continues with the same data. Ports: the gateway on
# 127.0.0.1:7100, raftnodes on 7101-7103 (RAFTKV_CLUSTER_PORT moves the base, 7100). Logs:
# <dir>/n<i>.log and <dir>/ngw.log (the gateway).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${RAFTKV_CLUSTER_DIR:-$ROOT/.cluster}
BASE=${RAFTKV_CLUSTER_PORT:-7100}
PORT=$((BASE + 1))
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
NODES=3

addr() { echo "127.0.0.1:$((PORT + $1 - 1))"; }

gateway_addr() { echo "127.0.0.1:$BASE"; }

raftnodes() {
	local m="" i
	for i in $(seq 1 $NODES); do
		m+="${m:+,}$(addr "$i")"
	done
	echo "$m"
}

members() {
	local m="" i
	for i in $(seq 1 $NODES); do
		m+="${m:+,}n$i=$(addr "$i")"
	done
	echo "$m"
}

running_pid() { # prints the pid of member $1 (or of the gateway, "gw") if it runs
	local f="$DIR/n$1.pid"
	[ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

stop_all() {
	local i pid
	for i in gw $(seq 1 $NODES); do
		pid=$(running_pid "$i" || true)
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
	done
	for i in gw $(seq 1 $NODES); do
		pid=$(running_pid "$i" || true)
		[ -z "$pid" ] && continue
		for _ in $(seq 1 100); do # at most 10 s: a leader hands over first
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
		rm -f "$DIR/n$i.pid"
	done
	return 0
}

cmd=${1:-start}
case "$cmd" in
stop)
	[ -d "$DIR" ] && touch "$DIR/.stopping"
	stop_all
	echo "cluster: stopped"
	exit 0
	;;
status)
	if pid=$(running_pid gw); then echo "gateway $(gateway_addr) running (pid $pid)"; else echo "gateway $(gateway_addr) stopped"; fi
	for i in $(seq 1 $NODES); do
		if pid=$(running_pid "$i"); then echo "n$i $(addr "$i") running (pid $pid)"; else echo "n$i $(addr "$i") stopped"; fi
	done
	exit 0
	;;
start) ;;
*)
	echo "usage: $0 [start|stop|status]" >&2
	exit 2
	;;
esac

for i in gw $(seq 1 $NODES); do
	if pid=$(running_pid "$i"); then
		echo "cluster: n$i already runs (pid $pid); use '$0 stop' first" >&2
		exit 1
	fi
done

"$ROOT/scripts/install-deps.sh"
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target raftnode kvgateway kvctl >/dev/null
RAFTNODE="$BUILD_DIR/server/node/raftnode"
KVGATEWAY="$BUILD_DIR/server/gateway/kvgateway"
KVCTL="$BUILD_DIR/client/kvctl"

mkdir -p "$DIR"
rm -f "$DIR/.stopping"
trap 'echo; echo "cluster: stopping"; stop_all; exit 0' INT TERM
for i in $(seq 1 $NODES); do
	"$RAFTNODE" --name "n$i" --data-dir "$DIR/n$i" --initial-cluster "$(members)" \
		>>"$DIR/n$i.log" 2>&1 &
	echo $! >"$DIR/n$i.pid"
done
"$KVGATEWAY" --listen "$(gateway_addr)" --raftnodes "$(raftnodes)" >>"$DIR/ngw.log" 2>&1 &
echo $! >"$DIR/ngw.pid"

cat <<EOF
cluster: kvgateway on $(gateway_addr); raftnodes on $(raftnodes); data and logs in $DIR
Try:
  $KVCTL --endpoints $(gateway_addr) put hello world
  $KVCTL --endpoints $(gateway_addr) get hello
  $KVCTL --endpoints $(gateway_addr) status
  grpcurl -plaintext $(gateway_addr) list        # scripts/install-grpcurl.sh installs grpcurl
  grpcurl -plaintext -d '{"key":"aGVsbG8="}' $(gateway_addr) raftkv.v1.KV/Get
Ctrl-C stops the cluster (or: $0 stop).
EOF

# Stay in the foreground until a member exits or we are told to stop.
while :; do
	for i in gw $(seq 1 $NODES); do
		if ! running_pid "$i" >/dev/null; then
			if [ -f "$DIR/.stopping" ]; then
				echo "cluster: stopped"
				exit 0
			fi
			echo "cluster: n$i exited; see $DIR/n$i.log" >&2
			stop_all
			exit 1
		fi
	done
	sleep 1
done
