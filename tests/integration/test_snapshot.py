#!/usr/bin/python3
"""A follower that missed more than the leader keeps in its log catches up by snapshot.

--snapshot-entries 50 --snapshot-trailing 10: the leader compacts its log every 50 entries,
keeping 10, so a follower that was down for a few hundred writes needs InstallSnapshot.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402

N_KEYS = 300
_c = None


def C():
    global _c
    if _c is None:
        _c = h.Cluster(3, label="snapshot", flags={"snapshot-entries": 50, "snapshot-trailing": 10}).start()
    return _c.revive()


def write_many(L, items, inflight=32):
    """Put every (key, value) on the leader, `inflight` at a time; all must succeed."""
    P = h.stubs().kv
    stub = L.kv()
    items = list(items)
    for i in range(0, len(items), inflight):
        futs = [stub.Put.future(P.PutRequest(key=k, value=v), timeout=h.scaled(10)) for k, v in items[i:i + inflight]]
        for f in futs:
            f.result()


def expected_state(n_keys, rounds):
    return {b"snap/%04d" % i: b"r%d-%d" % (rounds - 1, i) for i in range(n_keys)}


def check_serializable(node, want):
    P = h.stubs().kv
    r = node.kv().Range(P.RangeRequest(key=b"snap/", prefix=True, consistency=P.SERIALIZABLE),
                        timeout=h.scaled(2))
    got = {x.key: x.value for x in r.kvs}
    if got != want:
        return False
    return True


def test_follower_catches_up_by_snapshot():
    c = C()
    P = h.stubs().kv
    L = c.wait_leader()
    write_many(L, [(b"snap/%04d" % i, b"r0-%d" % i) for i in range(50)])
    f = h.rng.choice(c.followers(L))
    h.log("stopping follower %s (SIGTERM)" % f.name)
    rc = f.terminate()
    assert rc == 0, "follower %s exited %s on SIGTERM" % (f.name, rc)
    # a few hundred writes while it is down, overwriting keys so "latest value" matters
    t0 = time.monotonic()
    rounds = 2
    for r in range(rounds):
        write_many(L, [(b"snap/%04d" % i, b"r%d-%d" % (r, i)) for i in range(N_KEYS)])
    d = L.kv().Delete(P.DeleteRequest(key=b"snap/0299"), timeout=h.scaled(5))
    assert d.deleted == 1
    want = expected_state(N_KEYS, rounds)
    del want[b"snap/0299"]
    h.log("wrote %d puts in %.1fs while %s was down" % (rounds * N_KEYS, time.monotonic() - t0, f.name))
    lst = h.until(lambda: (lambda s: s.snapshot_index > 0 and s)(L.status()), 10,
                  "leader %s to take a snapshot" % L.name)
    h.log("leader snapshot_index=%d commit_index=%d" % (lst.snapshot_index, lst.commit_index))
    f.start()
    f.wait_ready()
    h.until(lambda: check_serializable(f, want), 30, "%s to serve the latest values (serializable)" % f.name)
    fst = f.status()
    assert fst.snapshot_index > 0, "restarted follower's snapshot_index is 0: %s" % fst
    assert fst.revision == L.status().revision, (fst.revision, L.status().revision)
    h.log("follower %s snapshot_index=%d applied=%d" % (f.name, fst.snapshot_index, fst.applied_index))
    # it keeps replicating normally afterwards
    r = L.kv().Put(P.PutRequest(key=b"snap/after", value=b"yes"), timeout=h.scaled(5))
    h.until(lambda: f.kv().Get(P.GetRequest(key=b"snap/after", consistency=P.SERIALIZABLE),
                               timeout=h.scaled(2)).kv.mod_revision == r.header.revision,
            10, "%s to apply a write after the snapshot" % f.name)


def test_snapshot_survives_restart_of_everyone():
    """After compaction, kill -9 of every node and a restart rebuilds the state from
    snapshot + log."""
    c = C()
    P = h.stubs().kv
    L = c.wait_leader()
    before = L.kv().Range(P.RangeRequest(key=b"snap/", prefix=True), timeout=h.scaled(5))
    assert before.count > 0 and not before.more
    for n in c.nodes:
        n.kill()
    for n in c.nodes:
        n.start()
    for n in c.nodes:
        n.wait_ready()
    L = c.wait_leader(timeout=15)
    r = L.kv().Range(P.RangeRequest(key=b"snap/", prefix=True), timeout=h.scaled(5))
    assert r.header.revision == before.header.revision, (r.header.revision, before.header.revision)
    assert list(r.kvs) == list(before.kvs), "data differs after the restart: %d -> %d keys" % (
        len(before.kvs), len(r.kvs))
    st = L.status()
    assert st.snapshot_index > 0, st


if __name__ == "__main__":
    h.run([test_follower_catches_up_by_snapshot, test_snapshot_survives_restart_of_everyone])
