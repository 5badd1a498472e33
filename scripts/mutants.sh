#!/usr/bin/env bash
# Break each feature of the Raft core and the storage layer on purpose and check that the
# test suites notice.
#
#   scripts/mutants.sh            # every mutant (several minutes)
#   scripts/mutants.sh 3 7        # only mutants 3 and 7
#
# Each mutant is one exact text replacement in server/, applied to a scratch copy of the
# tree (the working tree is never touched). The copy is built (RelWithDebInfo, no sanitizers,
# for speed) and `ctest -L "raft|storage"` runs with a shorter chaos run. A mutant is KILLED
# when some test fails, SURVIVED when all pass (INVALID/STALE when the mutant does not build or its
# text is gone: fix the script). Exit status: the number of mutants not killed.
# Not part of CI: it is the evidence that the tests can fail, to rerun after changing them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/raftkv-mutants.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export RAFTKV_CHAOS_SEEDS=${RAFTKV_CHAOS_SEEDS:-300}

# name | file under server/ | exact text | replacement   (\n and \t are expanded)
MUTANTS=$(
	cat <<'EOF'
vote: no up-to-date log check|raft/election.c|bool up_to_date =\n\t\tm->last_term > last_term \|\||bool up_to_date =\n\t\ttrue \|\|
vote: more than one vote per term|raft/election.c|bool can_vote = r->vote == m->from \|\||bool can_vote = true \|\|
durability: leader before its own vote is durable|raft/election.c|(r->role == RAFT_PRECANDIDATE \|\| granted_by(r, r->id))|(r->role == RAFT_PRECANDIDATE \|\| granted_by(r, r->id) \|\| 1)
vote: lower-term requests ignored|raft/raft.c|} else if (m->type == RAFT_MSG_PREVOTE \|\| m->type == RAFT_MSG_VOTE) {|} else if (m->type == RAFT_MSG_PREVOTE) {
durability: vote grant before persist|raft/election.c|\traft_send_after_persist(r, &resp);|\t*raft_send(r, resp.type, resp.to) = resp;
durability: append ack before persist|raft/replication.c|\traft_send_after_persist(r, &resp);|\t*raft_send(r, resp.type, resp.to) = resp;
durability: leader counts unpersisted entries|raft/replication.c|raft_quorum_value(r, r->stable, match_of)|raft_quorum_value(r, raft_log_last_index(&r->log), match_of)
commit: old-term entries by counting (Figure 8)|raft/replication.c|if (n <= r->commit \|\| raft_log_term(&r->log, n) != r->term)|if (n <= r->commit)
pre-vote: never used|raft/election.c|raft_campaign(r, r->cfg.pre_vote, false);|raft_campaign(r, false, false);
check-quorum: no lease for voters|raft/raft.c|if (in_lease && !m->transfer)|if (0 && in_lease)
check-quorum: leader never steps down|raft/replication.c|if (r->cfg.check_quorum && !quorum_active(r))|if (0 && !quorum_active(r))
replication: no conflict-term backtracking|raft/replication.c|\t\tif (m->hint_term > 0)\n|\t\tnext_probe = m->index - 1;\n\t\tif (0)\n
replication: lost appends never resent|raft/replication.c|\t\traft_progress_become_probe(p);\n\t}\n\tif (p->match < raft_log_last_index(&r->log))|\t}\n\tif (p->match < raft_log_last_index(&r->log))
replication: heartbeat commits past match|raft/replication.c|m->commit = p->match < r->commit ? p->match : r->commit;|m->commit = r->commit;
read-index: no quorum round|raft/read.c|uint64_t confirmed = raft_quorum_value(r, r->round_started, round_of);|uint64_t confirmed = r->round_started;
read-index: round not rechecked when the quorum shrinks|raft/membership.c|\t\traft_reads_on_ack(r);\n|
read-index: answers before own-term commit|raft/read.c|return r->commit >= r->term_start;|return r->commit >= r->term_start \|\| 1;
transfer: TIMEOUT_NOW to a lagging target|raft/membership.c|\tif (p->match == raft_log_last_index(&r->log))\n\t\traft_send(r, RAFT_MSG_TIMEOUT_NOW, target);|\traft_send(r, RAFT_MSG_TIMEOUT_NOW, target);\n\tif (0)\n\t\t;
transfer: proposals accepted during transfer|raft/replication.c|\tif (r->transferee != 0)\n\t\treturn RAFT_EBUSY;|
transfer: never times out|raft/replication.c|if (r->transferee != 0 && ++r->transfer_elapsed >= r->cfg.election_ticks)|if (r->transferee != 0 && 0)
snapshot: log never compacted|raft/raft.c|\t\traft_log_compact(&r->log, index - trailing);|\t\t(void)trailing;
snapshot: install not handed to the caller|raft/replication.c|\tr->u_snapshot = true;|\tr->u_snapshot = false;
snapshot: lost snapshot never retried|raft/replication.c|if (p->state == RAFT_SNAPSHOT && ++p->snapshot_ticks >= 2 * r->cfg.election_ticks)|if (p->state == RAFT_SNAPSHOT && 0)
membership: promote a lagging learner|raft/membership.c|if (p == NULL \|\| p->match < r->commit)|if (p == NULL)
membership: learner votes counted|raft/election.c|\tif (!raft_conf_is_voter(&r->conf, m->from))\n\t\treturn;\n\tint result|\tint result
membership: no rollback of truncated configuration|raft/raft.c|\tif (r->conf_index >= from)\n\t\traft_conf_rollback(r);|
membership: removed leader keeps leading|raft/membership.c|\tif (p != NULL && p->match == raft_log_last_index(&r->log))\n\t\traft_send(r, RAFT_MSG_TIMEOUT_NOW, p->id);\n\traft_become_follower(r, r->term, 0);|\t(void)p;
membership: two changes in flight|raft/membership.c|if (r->transferee != 0 \|\| r->conf_index > r->commit \|\| r->commit < r->term_start)|if (r->transferee != 0 \|\| r->commit < r->term_start)
storage: commit without sync|storage/storage.c|rv = storage_txn_commit(s, txn, b->sync);|rv = storage_txn_commit(s, txn, false);
storage: no page checksums|storage/storage.c|\tret = (*db)->set_flags(*db, DB_CHKSUM);|\tret = 0;
storage: partial snapshots never cleaned up|storage/storage.c|\t\trv = storage_snapshot_cleanup(s);|\t\trv = 0;
storage: no data directory lock|storage/storage.c|\tif (flock(s->lock_fd, LOCK_EX \| LOCK_NB) != 0) {|\tif (0) {
storage: load accepts a gap after the snapshot|storage/storage.c|\t\tif (index != expect) {|\t\tif (index < expect) {
storage: older snapshots kept|storage/snapshot.c|\treturn info->id < keep ? delete_snapshot(s, txn, info->id) : 0;|\t(void)s;\n\t(void)txn;\n\treturn info->id < keep ? 0 : 0;
EOF
)

selected=("$@")
survivors=0
i=0
while IFS= read -r line; do
	i=$((i + 1))
	if [ ${#selected[@]} -gt 0 ] && ! printf '%s\n' "${selected[@]}" | grep -qx "$i"; then
		continue
	fi
	# Split on unescaped '|' ("\|" stands for a literal '|').
	IFS=$'\x1f' read -r name file from to < <(printf '%s\n' "$line" | sed 's/\\|/\x1e/g; s/|/\x1f/g; s/\x1e/|/g') || true
	dir="$WORK/m$i"
	rm -rf "$dir"
	mkdir -p "$dir"
	(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$dir")
	if ! python3 - "$dir/server/$file" "$from" "$to" <<'PY'; then
import sys
path, old, new = sys.argv[1], sys.argv[2], sys.argv[3]
old = old.replace("\\n", "\n").replace("\\t", "\t")
new = new.replace("\\n", "\n").replace("\\t", "\t")
src = open(path).read()
if src.count(old) != 1:
    sys.exit("mutant text found %d times in %s" % (src.count(old), path))
open(path, "w").write(src.replace(old, new))
PY
		echo "[$i] $name: STALE (the text to mutate is gone; update this script)"
		survivors=$((survivors + 1))
		continue
	fi
	if ! cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$dir/build.log" 2>&1 ||
		! cmake --build "$dir/build" -j"$(nproc)" >>"$dir/build.log" 2>&1; then
		# A mutant that does not compile proves nothing about the tests.
		echo "[$i] $name: INVALID (does not build: $(grep -m1 -E 'error' "$dir/build.log"))"
		survivors=$((survivors + 1))
		continue
	fi
	if (cd "$dir/build" && timeout 600 ctest -L "raft|storage" -j2 >"$dir/test.log" 2>&1); then
		echo "[$i] $name: SURVIVED"
		survivors=$((survivors + 1))
	else
		failed=$(grep -oE 'test_[a-z_]+ \.+\*?\*?\*?(Failed|Subprocess|Timeout)' "$dir/test.log" | awk '{print $1}' | sort -u | tr '\n' ' ')
		echo "[$i] $name: KILLED by ${failed:-?}"
	fi
	rm -rf "$dir"
done <<<"$MUTANTS"
echo "mutants: $i, survivors: $survivors"
exit "$survivors"
