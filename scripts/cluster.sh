#!/usr/bin/env bash
# A local raftkv cluster on loopback: 3 raftnodes (the gateway joins with issue 5).
#
#   scripts/cluster.sh [start]   install dependencies and build if needed, start the cluster in
#                                the foreground, print the endpoints; Ctrl-C stops it cleanly
#   scripts/cluster.sh stop      stop a cluster started from another terminal (SIGTERM)
#   scripts/cluster.sh status    show which members run
#
# Data lives in $RAFTKV_CLUSTER_DIR (default: .cluster/ in the repository) and survives
# restarts: running `start` again continues with the same data. Ports: 127.0.0.1:7101-7103
# (override the first with RAFTKV_CLUSTER_PORT). Logs: <dir>/n<i>.log.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${RAFTKV_CLUSTER_DIR:-$ROOT/.cluster}
PORT=${RAFTKV_CLUSTER_PORT:-7101}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
NODES=3

addr() { echo "127.0.0.1:$((PORT + $1 - 1))"; }

members() {
	local m="" i
	for i in $(seq 1 $NODES); do
		m+="${m:+,}n$i=$(addr "$i")"
	done
	echo "$m"
}

running_pid() { # prints the pid of member $1 if it runs
	local f="$DIR/n$1.pid"
	[ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

stop_all() {
	local i pid
	for i in $(seq 1 $NODES); do
		pid=$(running_pid "$i" || true)
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
	done
	for i in $(seq 1 $NODES); do
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

for i in $(seq 1 $NODES); do
	if pid=$(running_pid "$i"); then
		echo "cluster: n$i already runs (pid $pid); use '$0 stop' first" >&2
		exit 1
	fi
done

"$ROOT/scripts/install-deps.sh"
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target raftnode >/dev/null
RAFTNODE="$BUILD_DIR/server/node/raftnode"

mkdir -p "$DIR"
rm -f "$DIR/.stopping"
trap 'echo; echo "cluster: stopping"; stop_all; exit 0' INT TERM
for i in $(seq 1 $NODES); do
	"$RAFTNODE" --name "n$i" --data-dir "$DIR/n$i" --initial-cluster "$(members)" \
		>>"$DIR/n$i.log" 2>&1 &
	echo $! >"$DIR/n$i.pid"
done

cat <<EOF
cluster: 3 raftnodes on $(addr 1), $(addr 2), $(addr 3); data and logs in $DIR
Try (grpcurl: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@latest):
  grpcurl -plaintext $(addr 1) list
  grpcurl -plaintext $(addr 1) raftkv.v1.Cluster/Status
  grpcurl -plaintext -d '{"key":"aGVsbG8=","value":"d29ybGQ="}' <leader address> raftkv.v1.KV/Put
Writes go to the leader (Status says which); other members answer UNAVAILABLE with the
leader in the raftkv-leader trailer. Ctrl-C stops the cluster (or: $0 stop).
EOF

# Stay in the foreground until a member exits or we are told to stop.
while :; do
	for i in $(seq 1 $NODES); do
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
