#!/usr/bin/python3
"""Whole-cluster restarts keep every acknowledged write: SIGTERM all, then kill -9 all."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as h  # noqa: E402

_c = None


def C():
    global _c
    if _c is None:
        _c = h.Cluster(3, label="restart").start()
    return _c.revive()


def snapshot_of_data(L):
    P = h.stubs().kv
    r = L.kv().Range(P.RangeRequest(key=b"rs/", prefix=True), timeout=h.scaled(5))
    assert not r.more
    return r.header.revision, [(x.key, x.value, x.create_revision, x.mod_revision, x.version) for x in r.kvs]


def write_data(c, tag, n=60):
    P = h.stubs().kv
    L = c.wait_leader()
    stub = L.kv()
    tag = tag.encode()
    futs = [stub.Put.future(P.PutRequest(key=b"rs/%s/%03d" % (tag, i), value=b"%s-%d" % (tag, i)),
                            timeout=h.scaled(10)) for i in range(n)]
    for f in futs:
        f.result()
    stub.Delete(P.DeleteRequest(key=b"rs/%s/000" % tag), timeout=h.scaled(5))
    stub.Append(P.AppendRequest(key=b"rs/%s/001" % tag, suffix=b"+", write_id=h.wid(7700 + tag[0], 1)),
                timeout=h.scaled(5))
    c.wait_caught_up()
    return snapshot_of_data(L)


def restart_all(c):
    for n in c.nodes:
        n.start()
    for n in c.nodes:
        n.wait_ready()
    return c.wait_leader(timeout=15)


def check_same(c, before, what):
    L = c.wait_leader()
    after = snapshot_of_data(L)
    assert after == before, "%s changed the data: revision %d -> %d, %d -> %d keys" % (
        what, before[0], after[0], len(before[1]), len(after[1]))
    P = h.stubs().kv
    for n in c.nodes:  # every node serves the same data
        h.until(lambda: [(x.key, x.value) for x in n.kv().Range(P.RangeRequest(
            key=b"rs/", prefix=True, consistency=P.SERIALIZABLE), timeout=h.scaled(2)).kvs] ==
            [(k, v) for k, v, _, _, _ in before[1]], 15, "%s to serve the data after %s" % (n.name, what))


def test_sigterm_all_and_restart():
    c = C()
    before = write_data(c, "a")
    assert len(before[1]) == 59
    for n in c.nodes:  # all at once, as a machine shutdown would
        n.proc.send_signal(15)
        n.expected_exit = True
    bad = [(n.name, rc) for n in c.nodes for rc in [n.wait_exit(20)] if rc != 0]
    assert not bad, "nodes did not exit 0 on SIGTERM: %s" % bad
    restart_all(c)
    check_same(c, before, "SIGTERM of every node")
    # the restarted cluster accepts writes, and the dedup session survived
    P = h.stubs().kv
    r = c.call("Append", P.AppendRequest(key=b"rs/a/001", suffix=b"+", write_id=h.wid(7700 + ord("a"), 1)))
    assert r.kv.value == b"a-1+", ("the retried Append was applied again after the restart", r.kv)


def test_kill9_all_and_restart():
    c = C()
    before = write_data(c, "b")
    for n in c.nodes:
        n.kill()
    restart_all(c)
    check_same(c, before, "kill -9 of every node")
    P = h.stubs().kv
    c.call("Put", P.PutRequest(key=b"rs/after", value=b"ok"))


def test_restart_one_node_many_times():
    """A follower killed and restarted repeatedly rejoins every time."""
    c = C()
    P = h.stubs().kv
    for i in range(3):
        L = c.wait_leader()
        f = h.rng.choice(c.followers(L))
        f.kill()
        c.call("Put", P.PutRequest(key=b"rs/loop", value=b"%d" % i))
        f.restart()
        h.until(lambda: f.kv().Get(P.GetRequest(key=b"rs/loop", consistency=P.SERIALIZABLE),
                                   timeout=h.scaled(2)).kv.value == b"%d" % i, 15,
                "%s to catch up (round %d)" % (f.name, i))


def test_wiped_follower_catches_up():
    """A follower whose data directory is wiped (a lost disk) rejoins with its old name and
    catches up. The leader still believed it held what it had acknowledged and probed it
    right after that forever; now the follower's answer lowers what the leader counts."""
    c = C()
    P = h.stubs().kv
    before = write_data(c, "w")
    L = c.wait_leader()
    f = h.rng.choice(c.followers(L))
    f.kill()
    shutil.rmtree(f.data_dir)
    c.call("Put", P.PutRequest(key=b"rs/wiped", value=b"after"))
    f.start()
    f.wait_ready()
    h.until(lambda: f.kv().Get(P.GetRequest(key=b"rs/wiped", consistency=P.SERIALIZABLE),
                               timeout=h.scaled(2)).kv.value == b"after", 20,
            "the wiped %s to catch up" % f.name)
    got = f.kv().Range(P.RangeRequest(key=b"rs/w/", prefix=True, consistency=P.SERIALIZABLE),
                       timeout=h.scaled(2))
    assert [(x.key, x.value) for x in got.kvs] == [(k, v) for k, v, _, _, _ in before[1]
                                                   if k.startswith(b"rs/w/")]


if __name__ == "__main__":
    h.run([test_sigterm_all_and_restart, test_kill9_all_and_restart, test_restart_one_node_many_times,
           test_wiped_follower_catches_up])
